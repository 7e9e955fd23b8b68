"""Translated prompts as the user sees them, through the real aiogram stack and the fake Bot API:
"understood as" under the picture in the user's language, the 77-token note, a failed translation,
and the /settings switch. The translator is the real MarianMT adapter on the tiny random-weight
model (what ``GENERATOR=tiny`` gets), presented as a real one (its captions are those of the real
model's translations); the picture is drawn by a recording fake generator whose token count is the
real tiny CLIP tokenizer's, standing in for the real model. What a random-weight translation shows
instead is tested in tests/telegram/test_first_hour.py."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from adapters.embedded.generator import FakeGenerator
from adapters.marian.translator import MarianTranslator
from adapters.sqlite.user_store import SqliteUserStore
from adapters.wuerstchen.tiny import build_tokenizer
from adapters.wuerstchen.tokens import unread_words
from domain.models import GeneratorKind
from tests.telegram.helpers import Chat

LINES = {
    "en": {
        "understood": "💬 understood as: ",
        "failed": "⚠️ I could not translate the prompt: the model read it as written.",
        "cut": "✂️ The model reads only the first 77 tokens; not read: ",
        "setting_on": "Prompts for the model: 🔤 Translated into English",
        "setting_off": "Prompts for the model: ✍️ As written",
    },
    "ru": {
        "understood": "💬 понял как: ",
        "failed": "⚠️ Не удалось перевести описание: модель прочла его как есть.",
        "cut": "✂️ Модель читает только первые 77 токенов, не прочитано: ",
        "setting_on": "Описание для модели: 🔤 Перевод на английский",
        "setting_off": "Описание для модели: ✍️ Как написано",
    },
}


class TranslatorAsReal(MarianTranslator):
    """The tiny MarianMT model, captioned as the real one's translations are."""

    random_weights = False  # type: ignore[assignment]


class ReadingGenerator(FakeGenerator):
    """The fake generator that records its requests and counts tokens as CLIP does; it stands in
    for the real model (which reads prompts; the placeholder reads none)."""

    kind = GeneratorKind.REAL

    def __init__(self) -> None:
        super().__init__()
        self.requests = []
        self.tokenizer = build_tokenizer()

    async def generate(self, requests, progress=None):
        self.requests += list(requests)
        return await super().generate(requests, progress)

    async def unread(self, prompts: Sequence[str]) -> list[tuple[str, int]]:
        return [(unread_words(self.tokenizer, p), int(self.tokenizer.model_max_length)) for p in prompts]


@pytest.fixture
async def translating(start_service, tiny_marian):
    generator = ReadingGenerator()
    translator = TranslatorAsReal.tiny(tiny_marian, device="cpu", threads=1)
    service = await start_service(
        generator=generator, translator=translator, send_rate_per_chat=50.0, user_rate_per_minute=100
    )
    return service, generator


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_the_caption_says_how_the_prompt_was_understood(telegram, translating, lang):
    service, generator = translating
    lines = LINES[lang]
    me = Chat(telegram, 300 + len(lang), lang)
    me.send("Закат над океаном --no люди")
    [photo] = await me.photo(timeout=30)
    request = generator.requests[-1]
    assert request.prompt != "Закат над океаном" and request.prompt.isascii()  # the model's English
    assert request.negative_prompt != "люди"
    caption = photo.text
    assert caption.startswith("Закат над океаном")  # what the user wrote stays first
    assert f"{lines['understood']}{request.prompt} · 🚫 {request.negative_prompt}" in caption
    assert lines["cut"] not in caption

    words = " ".join(["red cat on the blue painting"] * 14)  # 84 words, 84 tokens
    me.send(words)
    [photo] = await me.photo(timeout=30)
    assert generator.requests[-1].prompt == words  # English: as written
    assert lines["understood"] not in photo.text
    assert f"{lines['cut']}{' '.join(words.split()[75:])}" in photo.text

    service.parts.prompt_translator.model.generate = _broken  # the model fails from now on
    me.send("Горный пейзаж на рассвете")
    [photo] = await me.photo(timeout=30)
    assert generator.requests[-1].prompt == "Горный пейзаж на рассвете"
    assert lines["failed"] in photo.text and lines["understood"] not in photo.text


def _broken(*args, **kwargs):
    raise RuntimeError("CUDA error: out of memory")


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_settings_turn_translation_off(telegram, translating, lang):
    service, generator = translating
    lines = LINES[lang]
    me = Chat(telegram, 400 + len(lang), lang)
    me.send("/settings")
    panel = await me.reply()
    assert lines["setting_on"] in panel.text
    assert any(b["text"].startswith("✓ 🔤") for b in panel.buttons())
    me.press(int(panel.params["_message_id"]), "s:tr:off")
    [edit] = await me.wait(lambda c: c.method == "editMessageText")
    assert lines["setting_off"] in edit.text
    assert any(b["text"].startswith("✓ ✍️") for b in edit.buttons())

    me.send("Закат над океаном")
    [photo] = await me.photo(timeout=30)
    assert generator.requests[-1].prompt == "Закат над океаном"  # as written: the user said so
    assert lines["understood"] not in photo.text and lines["failed"] not in photo.text
    store = SqliteUserStore(service.settings.sqlite_path)
    await store.start()
    try:
        assert (await store.get_prefs(me.user_id)).translate is False
    finally:
        await store.stop()
