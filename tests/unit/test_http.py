"""The app's HTTP endpoint: liveness, readiness, and the local storage's signed, expiring links."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest

from adapters.embedded.storage import LocalFolderStorage
from adapters.http.server import HttpEndpoint


@pytest.fixture
async def endpoint(tmp_path):
    state = {"queue": True}
    storage = LocalFolderStorage(tmp_path, public_base_url="http://placeholder", link_ttl_s=60)
    await storage.start()
    http = HttpEndpoint("127.0.0.1", 0, readiness={"queue": lambda: state["queue"]}, files=storage)
    await http.start()
    storage.public_base_url = f"http://127.0.0.1:{http.port}"
    async with aiohttp.ClientSession() as session:
        yield http, storage, state, session
    await http.stop()


async def test_liveness_and_readiness(endpoint):
    http, _, state, session = endpoint
    base = f"http://127.0.0.1:{http.port}"
    async with session.get(f"{base}/healthz") as r:
        assert r.status == 200
    async with session.get(f"{base}/readyz") as r:
        assert r.status == 200 and (await r.json())["checks"] == {"queue": True}
    state["queue"] = False
    async with session.get(f"{base}/readyz") as r:
        assert r.status == 503 and (await r.json())["status"] == "unready"
    async with session.get(f"{base}/metrics") as r:
        assert r.status == 404  # no metrics wired here


async def test_signed_link_opens_the_image_until_it_expires(endpoint):
    http, storage, _, session = endpoint
    stored = await storage.put("images/job1.png", b"\x89PNG fake", "image/png", {})
    async with session.get(stored.url) as r:
        assert r.status == 200 and await r.read() == b"\x89PNG fake"
    query = parse_qs(urlparse(stored.url).query)
    base = stored.url.split("?")[0]
    async with session.get(f"{base}?exp={query['exp'][0]}&sig={'0' * 64}") as r:
        assert r.status == 403  # forged signature
    async with session.get(base) as r:
        assert r.status == 403  # no signature at all
    past = int(time.time()) - 1
    async with session.get(f"{base}?exp={past}&sig={storage.sign('images/job1.png', past)}") as r:
        assert r.status == 403  # genuine but expired
    async with session.get(f"http://127.0.0.1:{http.port}/files/../../etc/passwd?exp=1&sig=x") as r:
        assert r.status in (403, 404)
    # A signature that is not even ASCII is refused like any forged one (compare_digest on str
    # would raise: a 500).
    async with session.get(f"{base}?exp={query['exp'][0]}&sig={'é' * 64}") as r:
        assert r.status == 403


async def test_link_without_public_url_is_a_file_uri(tmp_path):
    storage = LocalFolderStorage(tmp_path)
    stored = await storage.put("images/a.png", b"data", "image/png", {})
    assert stored.url.startswith("file://")
    assert await asyncio.to_thread(Path(urlparse(stored.url).path).read_bytes) == b"data"


async def test_failed_checks_say_why():
    def broken() -> bool:
        raise RuntimeError("the check itself broke")

    http = HttpEndpoint(
        "127.0.0.1",
        0,
        readiness={"telegram": lambda: "the Bot API refuses the token (401 Unauthorized)", "queue": lambda: True},
        liveness={"worker": lambda: "the worker loop ended", "backlog": broken},
    )
    await http.start()
    base = f"http://127.0.0.1:{http.port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/readyz") as r:
                body = await r.json()
                assert r.status == 503 and body["checks"] == {"telegram": False, "queue": True}
                assert body["reasons"] == {"telegram": "the Bot API refuses the token (401 Unauthorized)"}
                assert body["reason"] == "telegram: the Bot API refuses the token (401 Unauthorized)"
            async with session.get(f"{base}/healthz") as r:
                body = await r.json()
                assert r.status == 503 and body["status"] == "dead"
                assert body["reasons"] == {"worker": "the worker loop ended", "backlog": "check failed (RuntimeError)"}
            http.liveness = {"worker": lambda: True}
            async with session.get(f"{base}/healthz") as r:
                assert r.status == 200 and (await r.json()) == {"status": "alive", "checks": {"worker": True}}
    finally:
        await http.stop()
