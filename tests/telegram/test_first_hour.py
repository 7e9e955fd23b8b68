"""A new operator's first hour, through the real aiogram stack and the strict fake Bot API: nothing
that is not the model's work passes for it. ``GENERATOR=auto`` without the model gives the
placeholder, with a start-up warning on how to get the model, a line under every picture, /start
and /help saying so, and /settings not promising a translation that does not happen; the tiny
random-weight model says so too, and its translation is never shown as "understood as"; a
bot-only process says what the last worker reported."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.embedded.generator import FakeGenerator
from adapters.marian.translator import MarianTranslator
from adapters.wuerstchen.generator import WuerstchenGenerator
from adapters.wuerstchen.tiny import ensure_tiny_model
from domain.models import GeneratorKind
from domain.use_cases import ProcessJobs
from tests.telegram.helpers import Chat

TEXTS = {
    "en": {
        "placeholder_line": "⚠️ A placeholder, not a generated image: the model is not installed.",
        "placeholder_help": "⚠️ The image model is not installed on this service: you get placeholders",
        "tiny_line": "⚠️ Random test weights: this picture is noise, not a generated image.",
        "tiny_help": "⚠️ This service runs the model on random test weights",
        "random_translation": "🔤 Translated by a test model with random weights",
        "understood": "understood as",
        "real_help": "🖼 Pictures here are drawn by the Würstchen v2 model.",
        "unknown_help": "ℹ️ Which model draws here is not known yet",
        "no_translation": "Prompts for the model: ✍️ As written: this service does not translate prompts now",
        "translated": "Translated into English",
    },
    "ru": {
        "placeholder_line": "⚠️ Это заглушка, а не сгенерированная картинка: модель не установлена.",
        "placeholder_help": (
            "⚠️ На этом сервисе не установлена модель: вместо сгенерированных картинок приходят заглушки"
        ),
        "tiny_line": "⚠️ Случайные тестовые веса: эта картинка — шум, а не работа модели.",
        "tiny_help": "⚠️ Модель здесь работает на случайных тестовых весах",
        "random_translation": "🔤 Перевёл тестовый переводчик со случайными весами",
        "understood": "понял как",
        "real_help": "🖼 Картинки здесь рисует модель Würstchen v2.",
        "unknown_help": "ℹ️ Какая модель здесь рисует, пока неизвестно",
        "no_translation": "Описание для модели: ✍️ Как написано: сейчас сервис не переводит описания",
        "translated": "Перевод на английский",
    },
}


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_auto_without_the_model_gives_a_placeholder_that_says_so(
    start_service, telegram, tmp_path, monkeypatch, caplog, lang
):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.WARNING, logger="config.factories"):
        service = await start_service(generator="auto")
    assert isinstance(service.parts.generator, FakeGenerator)
    [warning] = [r for r in caplog.records if r.name == "config.factories" and r.levelno == logging.WARNING]
    text = warning.getMessage()
    for part in (
        "PLACEHOLDERS",
        "the worker extra is installed",
        f"not in the Hugging Face cache {tmp_path / 'empty-hub'}",
        "HF_HUB_OFFLINE is set, so the hub was not asked",
        'pip install -e ".[worker]"',
        "pip install torch --index-url https://download.pytorch.org/whl/cpu",
        "about 12.8 GB",
    ):
        assert part in text, (part, text)

    t = TEXTS[lang]
    me = Chat(telegram, 501, lang)
    assert t["placeholder_help"] in await me.ask("/start")
    assert t["placeholder_help"] in await me.ask("/help")
    settings = await me.ask("/settings")  # the user's default is "translate", but nothing is translated
    assert t["no_translation"] in settings and t["translated"] not in settings

    me.send("Закат над океаном")
    [photo] = await me.photo()
    lines = photo.text.splitlines()
    assert lines[0] == "Закат над океаном" and lines[1] == t["placeholder_line"]
    me.send("a lighthouse --ar 16:9")
    [photo] = await me.photo()
    assert t["placeholder_line"] in photo.text  # under every such picture


async def test_the_russian_example_of_a_missing_value_is_russian(start_service, telegram):
    await start_service()
    me = Chat(telegram, 502, "ru")
    reply = await me.ask("кот-космонавт --no")
    assert "например: --no текст, размытие" in reply and "text, blur" not in reply


@pytest.fixture
def tiny_wuerstchen(tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "tiny-wuerstchen"
    ensure_tiny_model(folder)
    return folder


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_random_test_weights_say_so_and_their_translation_is_not_understanding(
    start_service, telegram, tiny_wuerstchen, tiny_marian, lang
):
    generator = WuerstchenGenerator.tiny(tiny_wuerstchen, device="cpu", threads=1)
    translator = MarianTranslator.tiny(tiny_marian, device="cpu", threads=1)
    service = await start_service(
        generator=generator,
        translator=translator,
        default_width=256,
        default_height=256,
        quality_policy="fixed",
        default_quality="fast",
    )
    assert service.parts.generator.kind == GeneratorKind.TINY
    t = TEXTS[lang]
    me = Chat(telegram, 503, lang)
    assert t["tiny_help"] in await me.ask("/help")
    me.send("Закат над океаном")
    [photo] = await me.photo(timeout=60)
    caption = photo.text
    assert t["tiny_line"] in caption
    assert t["random_translation"] in caption  # it was translated, by gibberish ...
    assert t["understood"] not in caption  # ... which is never shown as understanding


class RealStandIn(FakeGenerator):
    """A worker in another process that reports the real model (what the bot learns from)."""

    kind = GeneratorKind.REAL


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_a_bot_only_process_says_what_the_last_worker_reported(start_service, telegram, lang):
    service = await start_service(role="bot")
    t = TEXTS[lang]
    me = Chat(telegram, 504, lang)
    assert t["unknown_help"] in await me.ask("/help")  # no worker seen yet

    # a worker of its own, as another process would be (the queue is the only link)
    worker = ProcessJobs(
        queue=service.queue,
        generator=RealStandIn(),
        storage=service.parts.storage,
        generator_kind=GeneratorKind.REAL,
        batch_wait_s=0.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        me.send("a mountain landscape at dawn")
        [photo] = await me.photo()
        assert t["placeholder_line"] not in photo.text and t["tiny_line"] not in photo.text
        assert t["real_help"] in await me.ask("/help")
        assert t["real_help"] in await me.ask("/start")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
