"""Helpers of the Telegram tests: a user's view of the chat, and a generator the test can hold."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from adapters.embedded.generator import FakeGenerator
from domain.models import GeneratedImage, GenerationRequest
from domain.ports import ProgressCallback
from tests.fakes.telegram import Call, FakeBotAPI


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image.size


class HeldGenerator(FakeGenerator):
    """The fake generator, except that a batch with a prompt containing ``marker`` reports its
    first step and then waits until the test calls ``release()``."""

    def __init__(self, marker: str = "snail", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.marker = marker
        self.gate = asyncio.Event()
        self.holding = asyncio.Event()

    def release(self) -> None:
        self.gate.set()

    async def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GeneratedImage]:
        if any(self.marker in r.prompt for r in requests):
            total = max(r.decoder_steps for r in requests)
            if progress:
                outcome = progress(1, total)
                if asyncio.iscoroutine(outcome):
                    await outcome
            self.holding.set()
            await self.gate.wait()
        return await super().generate(requests, progress)


class Chat:
    """One user talking to the bot through the fake server."""

    def __init__(self, telegram: FakeBotAPI, user_id: int, lang: str = "en") -> None:
        self.tg = telegram
        self.user_id = user_id
        self.lang = lang
        self.mark = 0

    def since_mark(self) -> list[Call]:
        return [c for c in self.tg.calls[self.mark :] if c.chat_id == self.user_id]

    def send(self, text: str) -> None:
        self.mark = len(self.tg.calls)
        self.tg.send_text(self.user_id, text, language_code=self.lang)

    def press(self, message_id: int, data: str) -> str:
        self.mark = len(self.tg.calls)
        return self.tg.press(self.user_id, message_id, data, language_code=self.lang)

    async def wait(self, predicate: Callable[[Call], bool], timeout: float = 10.0, count: int = 1) -> list[Call]:
        """The first ``count`` calls to this chat since the last send/press that match."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.since_mark() if c.ok and predicate(c)]
            if len(found) >= count:
                return found[:count]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"chat {self.user_id}: wanted {count} matching call(s), got {len(found)}; since the mark: "
                    + repr([(c.method, c.text[:80]) for c in self.since_mark()])
                )
            await asyncio.sleep(0.02)

    async def reply(self, timeout: float = 10.0) -> Call:
        [call] = await self.wait(lambda c: c.method == "sendMessage", timeout)
        return call

    async def ask(self, text: str, timeout: float = 10.0) -> str:
        self.send(text)
        return (await self.reply(timeout)).text

    async def photo(self, timeout: float = 15.0, count: int = 1) -> list[Call]:
        return await self.wait(lambda c: c.method in ("sendPhoto", "sendDocument"), timeout, count)


def tiny_png(width: int = 64, height: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buf, format="PNG")
    return buf.getvalue()
