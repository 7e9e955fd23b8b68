"""Polling comes back: a bot started while the Bot API is unreachable keeps starting polling again
(1 s, doubling), and once the API is up it reads updates and answers; a background task of the
Telegram front that dies is logged at once. Through the real service and aiogram stack."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest

import app
from config.bootstrap import Components
from config.settings import Settings
from domain.use_cases import DeliverResults
from tests.fakes.telegram import FakeBotAPI
from tests.telegram.conftest import free_port
from tests.telegram.helpers import Chat

RESTART = re.compile(r"Telegram polling stopped \((\w+)\); starting it again in (\d+) s")


def settings_for(api_url: str, token: str, tmp_path: Any) -> Settings:
    return Settings(
        _env_file=None,
        telegram_bot_token=token,
        telegram_api_url=api_url,
        http_host="127.0.0.1",
        http_port=0,
        local_storage_dir=tmp_path / "images",
        memory_queue_file=tmp_path / "queue.json",
        sqlite_path=tmp_path / "p2p.sqlite3",
        default_width=512,
        default_height=384,
        status_edit_interval_s=0.3,
        send_backoff_s=0.1,
    )


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def restarts(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in (RESTART.search(r.getMessage()) for r in caplog.records) if m]


async def test_a_bot_started_while_the_bot_api_is_down_answers_once_it_is_up(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()  # nothing listens here yet: every call is refused
    telegram = FakeBotAPI()
    settings = settings_for(f"http://127.0.0.1:{port}", telegram.token, tmp_path)
    stop = asyncio.Event()
    service = asyncio.create_task(app.serve(Components(settings, role="all"), stop))
    try:
        # Down: polling fails to start, and is started again after 1 s, then 2 s.
        await until(lambda: len(restarts(caplog)) >= 2, 20, "two restarts of polling")
        assert [delay for _, delay in restarts(caplog)[:2]] == [1, 2]
        assert all(kind.startswith("Telegram") for kind, _ in restarts(caplog))  # aiogram's network error
        assert not service.done()

        await telegram.start(port)  # the Bot API is back
        await telegram.wait_polling(timeout=20)
        chat = Chat(telegram, 4242)
        assert (await chat.ask("a lighthouse at dawn", timeout=15)).startswith("⏳ Queued")
        [photo] = await chat.photo(timeout=20)
        assert "a lighthouse at dawn" in photo.text
    finally:
        stop.set()
        assert await asyncio.wait_for(service, 30) == 0
        await telegram.stop()
    assert all(telegram.token not in r.getMessage() for r in caplog.records)  # never the token
    assert "Task exception was never retrieved" not in caplog.text


async def test_a_front_task_that_dies_is_logged_at_once(tmp_path, caplog, monkeypatch, telegram):
    async def dies(self: DeliverResults, stop: asyncio.Event) -> None:
        raise RuntimeError("the delivery loop broke")

    monkeypatch.setattr(DeliverResults, "run", dies)
    caplog.set_level(logging.INFO)
    stop = asyncio.Event()
    settings = settings_for(telegram.base_url, telegram.token, tmp_path)
    service = asyncio.create_task(app.serve(Components(settings, role="all"), stop))
    try:
        await telegram.wait_polling()
        # Logged while the service runs, with the task's name and traceback, not at exit.
        await until(lambda: "Telegram background task 'deliver' failed (RuntimeError)" in caplog.text, 5, "the log")
        [record] = [r for r in caplog.records if "background task 'deliver'" in r.getMessage()]
        # The traceback is on the record, or already folded into its text by the redacting filter
        # that config/logging.py installs (a test before this one may have installed it).
        assert record.levelno == logging.ERROR
        assert record.exc_info is not None or "RuntimeError: the delivery loop broke" in record.getMessage()
        assert not service.done()
    finally:
        stop.set()
        assert await asyncio.wait_for(service, 30) == 0
