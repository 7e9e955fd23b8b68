"""End to end in one process: the real aiogram bot against the local fake Bot API server, the
in-memory queue, the fake generator and the local-folder storage, wired by the real composition
root and run by the real ``serve``."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from PIL import Image


@pytest.fixture
async def service(start_service):
    """The real ``app.serve`` (role all) on the embedded adapters, talking to the fake server."""
    return await start_service()


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image.size


async def test_prompt_to_photo(telegram, service):
    telegram.send_text(42, "a sunset over the ocean")
    [queued] = await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 42)
    assert "Queued" in queued.params["text"]
    [photo] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 42, timeout=20)
    assert png_size(photo.files["photo"]) == (512, 384)
    assert "a sunset over the ocean" in photo.params["caption"]
    assert "512×384" in photo.params["caption"]


async def test_txt2img_command_in_russian(telegram, service):
    telegram.send_text(43, "/txt2img Закат над океаном", language_code="ru")
    [photo] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 43, timeout=20)
    assert png_size(photo.files["photo"]) == (512, 384)
    assert "Закат над океаном" in photo.params["caption"]
    assert "качество" in photo.params["caption"]
    assert any("В очереди" in t for t in telegram.texts_to(43))


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("/txt2img", "en", "The prompt is empty"),
        ("/txt2img    ", "ru", "Описание пустое"),
        ("x" * 1001, "en", "too long: 1,001 characters, at most 1,000"),
        ("x" * 5000, "ru", "слишком длинное"),
        ("a cat\x00\x1b[31m", "en", "control characters"),
        ("🌅🌊🔥", "ru", "нет слов"),
    ],
)
async def test_bad_input_gets_a_clear_reply_and_nothing_is_queued(telegram, service, text, lang, expected):
    telegram.send_text(50, text, language_code=lang)
    [reply] = await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 50)
    assert expected in reply.params["text"]
    assert await service.queue.backlog() == 0
    await asyncio.sleep(0.3)
    assert telegram.calls_of("sendPhoto", 50) == []


async def test_start_help_and_non_text(telegram, service):
    telegram.send_text(60, "/start", language_code="ru")
    telegram.send_text(61, "/help", language_code="en")
    telegram.send_sticker(62, language_code="en")
    [start] = await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 60)
    [help_] = await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 61)
    [other] = await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 62)
    assert "Привет" in start.params["text"]
    assert "/txt2img" in help_.params["text"]
    assert "text prompts only" in other.params["text"]


async def test_user_who_blocked_the_bot_does_not_break_anything(telegram, service, caplog):
    caplog.set_level(logging.INFO)
    telegram.send_text(70, "a red fox")
    await telegram.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 70)
    telegram.blocked_chats.add(70)  # blocks the bot after sending the prompt
    telegram.send_text(71, "a blue whale")
    await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 71, timeout=20)
    [first] = await telegram.wait_for(lambda c: c.chat_id == 70 and c.params.get("_failed") == 403, timeout=20)
    await asyncio.sleep(1.0)
    assert [c for c in telegram.calls if c.chat_id == 70 and c.at > first.at] == []  # nothing after it
    assert telegram.calls_of("sendPhoto", 71)[0].ok  # the other user was not held up
    assert any("cannot be reached" in r.getMessage() for r in caplog.records)


async def test_token_never_reaches_the_log(telegram, service, caplog):
    caplog.set_level(logging.DEBUG)
    telegram.fail("sendPhoto", 500, "Internal Server Error", times=10)
    telegram.send_text(80, "a lighthouse")
    await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 80, timeout=20)
    await asyncio.sleep(1.0)
    assert all(telegram.token not in r.getMessage() for r in caplog.records)
