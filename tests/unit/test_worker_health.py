"""A worker whose model loads (or downloads) is alive but not ready, says why on /readyz and
exports ``p2p_model_loading``; once loaded it is ready and takes jobs. Through ``app.serve``
with the worker role, a generator double whose start blocks until the test lets it finish."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

import app
from adapters.embedded.generator import FakeGenerator
from config.bootstrap import Components
from config.settings import Settings


class SlowToLoad(FakeGenerator):
    """Loads until ``loaded`` is set, as a model read from disk or the hub does."""

    def __init__(self) -> None:
        super().__init__()
        self.loading = asyncio.Event()
        self.loaded = asyncio.Event()

    async def start(self) -> None:
        self.loading.set()
        await self.loaded.wait()
        await super().start()


async def get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as reply:
        return reply.status, (await reply.json() if path != "/metrics" else await reply.text())


def gauge(text: str, name: str) -> float:
    [value] = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{")]
    return value


async def test_a_loading_model_keeps_the_worker_unready_but_alive(tmp_path):
    settings = Settings(
        _env_file=None,
        http_host="127.0.0.1",
        http_port=0,
        local_storage_dir=tmp_path / "images",
        memory_queue_file=tmp_path / "queue.json",
        telegram_bot_token="",
    )
    generator = SlowToLoad()
    parts = Components(settings, role="worker", generator=generator)
    stop = asyncio.Event()
    service = asyncio.create_task(app.serve(parts, stop))
    try:
        await asyncio.wait_for(generator.loading.wait(), 60)
        port = parts.http.port
        status, body = await get(port, "/readyz")
        assert status == 503 and body["reasons"] == {"started": "loading the model"}
        assert (await get(port, "/healthz"))[0] == 200  # alive: a probe must not kill it now
        _, text = await get(port, "/metrics")
        assert gauge(text, "p2p_model_loading") == 1.0
        assert gauge(text, "p2p_model_downloaded_bytes") == 0.0  # nothing downloaded: a local double

        generator.loaded.set()
        deadline = time.monotonic() + 30
        while (await get(port, "/readyz"))[0] != 200:
            assert time.monotonic() < deadline, "the worker never became ready"
            await asyncio.sleep(0.05)
        _, text = await get(port, "/metrics")
        assert gauge(text, "p2p_model_loading") == 0.0
        job = await parts.submit(user_id=1, chat_id=1, prompt="a heron")
        [delivery] = await parts.queue.receive_events(1, 10.0)
        assert delivery.message.job_id == job.job_id  # it takes jobs now
    finally:
        stop.set()
        assert await asyncio.wait_for(service, 30) == 0
