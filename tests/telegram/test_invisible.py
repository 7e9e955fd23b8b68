"""Invisible and bidi control characters in a prompt, through the real aiogram stack and the
strict fake Bot API: the bot drops them before anything is shown, so neither the live status nor
the caption reads differently from what the user sees (a U+202E turns the rest of a line around)."""

from __future__ import annotations

import unicodedata

from tests.telegram.helpers import Chat

SNEAKY = "a\u202e red\u200b fox\u2066 in\u2069 snow\ufeff --no\u200f blur\u2060 --seed 7"


def format_characters(text: str) -> list[str]:
    return [f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) == "Cf"]


async def test_no_invisible_character_reaches_the_status_or_the_caption(telegram, start_service):
    await start_service()
    me = Chat(telegram, 401)
    me.send(SNEAKY)
    [photo] = await me.photo(timeout=30)
    assert photo.text.startswith("a red fox in snow")
    assert "blur" in photo.text  # the negative prompt, shown as written without its marks
    statuses = telegram.texts_to(401)
    assert any("a red fox in snow" in text for text in statuses)  # the live status showed the prompt
    for text in [*statuses, photo.text]:
        assert format_characters(text) == [], text
