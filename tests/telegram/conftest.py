"""Run the real service (``app.serve``, role all) against the local fake Bot API server, with the
in-memory queue, the fake generator and local-folder storage, and settings short enough for tests."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

import pytest

import app
from config.bootstrap import Components
from config.settings import Settings
from tests.fakes.telegram import FakeBotAPI


@dataclass
class Service:
    telegram: FakeBotAPI
    parts: Components
    settings: Settings
    task: asyncio.Task[int]
    stop: asyncio.Event

    @property
    def queue(self) -> Any:
        return self.parts.queue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def start_service(telegram, tmp_path):
    """``await start_service(**settings)`` runs the service (``generator``, ``translator``: adapters
    to use instead of the settings' choice, or for ``generator`` a GENERATOR value such as "auto";
    ``role``: "all", or "bot" for a bot-only process); it is stopped after the test."""
    running: list[Service] = []

    async def start(*, generator: Any = None, translator: Any = None, role: str = "all", **overrides: Any) -> Service:
        values: dict[str, Any] = dict(
            _env_file=None,
            generator="fake",  # not auto: no look at the hub cache or the network from these tests
            telegram_bot_token=telegram.token,
            telegram_api_url=telegram.base_url,
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
        if isinstance(generator, str):  # a setting, not an adapter
            values["generator"], generator = generator, None
        values.update(overrides)
        settings = Settings(**values)
        parts = Components(settings, role=role, generator=generator, prompt_translator=translator)
        stop = asyncio.Event()
        task = asyncio.create_task(app.serve(parts, stop))
        service = Service(telegram, parts, settings, task, stop)
        running.append(service)
        # ready when the bot polls (or, in webhook mode, has set its webhook)
        # (the first start of a test process imports aiogram, NudeNet ...: 15 s and more on a loaded machine)
        await telegram.wait_for(lambda c: c.method in ("deleteWebhook", "setWebhook"), timeout=60)
        if service.settings.telegram_mode == "polling":
            await telegram.wait_polling()
        return service

    yield start
    for service in running:
        service.stop.set()
        assert await asyncio.wait_for(service.task, 30) == 0
