"""The caption's note on how the model read the prompt, in both languages, within Telegram's
1024-character caption limit however long the texts are."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest

from adapters.telegram import captions
from adapters.telegram.captions import CAPTION_LIMIT
from adapters.telegram.i18n import UiTexts
from domain.models import JobStatus, Locale, Result, TranslationStatus, Understood


def notifier() -> SimpleNamespace:
    return SimpleNamespace(caption=functools.partial(captions.caption, UiTexts()))


def result(prompt: str, understood: Understood | None) -> Result:
    return Result(
        job_id="j",
        user_id=1,
        chat_id=1,
        status=JobStatus.DONE,
        prompt=prompt,
        seed=7,
        width=512,
        height=512,
        image_key="images/j.png",
        understood=understood,
    )


@pytest.mark.parametrize(
    ("locale", "understood", "failed", "cut"),
    [
        (
            Locale.EN,
            "💬 understood as: a sunset over the ocean",
            "⚠️ I could not translate",
            "✂️ The model reads only the first 77 tokens; not read: at dusk",
        ),
        (
            Locale.RU,
            "💬 понял как: a sunset over the ocean",
            "⚠️ Не удалось перевести",
            "✂️ Модель читает только первые 77 токенов, не прочитано: at dusk",
        ),
    ],
)
def test_the_note_in_each_language(locale, understood, failed, cut):
    n = notifier()
    seen = Understood(
        prompt="a sunset over the ocean",
        language="ru",
        translation=TranslationStatus.TRANSLATED,
        cut="at dusk",
        token_limit=77,
    )
    caption = n.caption(result("Закат над океаном", seen), locale)
    assert caption.splitlines()[:3] == ["Закат над океаном", understood, cut]
    failure = seen.model_copy(update={"translation": TranslationStatus.FAILED, "prompt": "Закат", "cut": ""})
    assert failed in n.caption(result("Закат", failure), locale)
    for quiet in (
        None,
        seen.model_copy(update={"translation": TranslationStatus.NONE, "cut": ""}),
        seen.model_copy(update={"translation": TranslationStatus.OFF, "cut": ""}),
    ):
        assert n.caption(result("Закат", quiet), locale).count("\n") == 1  # the prompt and the details


def test_long_texts_keep_the_caption_within_the_limit():
    n = notifier()
    long_ru, long_en = "закат " * 166, "sunset " * 150
    seen = Understood(
        prompt=long_en,
        negative_prompt="people " * 100,
        language="ru",
        translation=TranslationStatus.TRANSLATED,
        negative_translated=True,
        cut="sunset " * 80,
        token_limit=77,
    )
    for locale in Locale:
        caption = n.caption(result(long_ru, seen), locale, negative="люди " * 100)
        assert len(caption) <= CAPTION_LIMIT
        assert caption.splitlines()[-1].startswith("🎲 seed 7") and caption.endswith(("s", "с"))  # whole details
        assert "…" in caption.splitlines()[0]  # the user's prompt gave way, shortened
