"""Health that tells the truth, through the real service, the real aiogram stack and the strict
fake Bot API: the bot is not ready while its token is refused (401), while another instance holds
the polling (409), while the Bot API is unreachable, or while the webhook is not set or fails;
it is ready again once the fault clears (Telegram's failed deliveries to the webhook are exported
but do not take the pod out: that would keep them failing). A loop that should run and died fails ``/healthz``. The
state is exported as metrics (``p2p_telegram_polling_up``, ``p2p_telegram_webhook_up``,
``p2p_telegram_api_errors_total{method,code}``) for the alerts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import app
from config.bootstrap import Components
from config.settings import Settings
from domain.use_cases import DeliverResults, ProcessJobs
from tests.fakes.telegram import FakeBotAPI
from tests.telegram.conftest import free_port
from tests.telegram.helpers import Chat
from tests.telegram.test_polling_restart import settings_for, until

SECRET = "s3cret-Token_for-tests_0123456789abcdef"


async def get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as reply:
        body = await reply.json() if path != "/metrics" else await reply.text()
        return reply.status, body


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                labels = {k: v for k, v in sample.labels.items() if not k.startswith("otel_scope")}
                out[tuple(sorted(labels.items()))] = sample.value
    return out


async def eventually_status(port: int, path: str, status: int, timeout: float = 20.0) -> Any:
    """The body of ``path`` once it answers ``status``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        code, body = await get(port, path)
        if code == status:
            return body
        last = (code, body)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} did not answer {status} within {timeout} s; last: {last}")


async def metric(port: int, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    _, text = await get(port, "/metrics")
    return samples(text, name)


async def test_readiness_follows_a_refused_token_and_a_second_poller(start_service, telegram):
    service = await start_service()
    port = service.parts.http.port
    body = await eventually_status(port, "/readyz", 200)
    assert body["checks"]["telegram"] is True
    assert await metric(port, "p2p_telegram_polling_up") == {(): 1.0}

    # The token is revoked: every call answers 401, getUpdates too (aiogram retries it forever).
    telegram.revoked = True
    body = await eventually_status(port, "/readyz", 503)
    assert body["checks"]["telegram"] is False
    assert "401" in body["reasons"]["telegram"] and telegram.token not in str(body)
    assert await metric(port, "p2p_telegram_polling_up") == {(): 0.0}
    refused = await metric(port, "p2p_telegram_api_errors_total")
    assert refused[(("code", "401"), ("method", "getUpdates"))] >= 1
    assert (await get(port, "/healthz"))[0] == 200  # alive: restarting it would not help
    telegram.revoked = False
    await eventually_status(port, "/readyz", 200)
    assert await metric(port, "p2p_telegram_polling_up") == {(): 1.0}

    # Another instance polls with the same token: Telegram answers 409 Conflict.
    telegram.other_poller = True
    body = await eventually_status(port, "/readyz", 503)
    assert "409" in body["reason"] and "another instance" in body["reasons"]["telegram"]
    conflicts = await metric(port, "p2p_telegram_api_errors_total")
    assert conflicts[(("code", "409"), ("method", "getUpdates"))] >= 1
    telegram.other_poller = False
    await eventually_status(port, "/readyz", 200)

    # Polling is back for real: a prompt is read and answered.
    chat = Chat(telegram, 5151)
    assert (await chat.ask("a red kite", timeout=15)).startswith("⏳ Queued")


async def test_not_ready_while_the_bot_api_is_unreachable(tmp_path):
    api_port = free_port()  # nothing listens here yet
    telegram = FakeBotAPI()
    settings = settings_for(f"http://127.0.0.1:{api_port}", telegram.token, tmp_path)
    parts = Components(settings, role="all")
    stop = asyncio.Event()
    service = asyncio.create_task(app.serve(parts, stop))
    try:
        await until(lambda: parts.started, 30, "the service to start")
        port = parts.http.port
        body = await eventually_status(port, "/readyz", 503)
        assert body["checks"] == {"started": True, "queue": True, "telegram": False}
        assert body["reasons"]["telegram"] in ("the Bot API is unreachable", "polling is not running")
        assert (await get(port, "/healthz"))[0] == 200
        await telegram.start(api_port)
        await eventually_status(port, "/readyz", 200, timeout=30)  # polling restarts within 1-2 s
    finally:
        stop.set()
        assert await asyncio.wait_for(service, 30) == 0
        await telegram.stop()


async def test_webhook_readiness_follows_what_telegram_holds(tmp_path, telegram):
    base = settings_for(telegram.base_url, telegram.token, tmp_path)
    settings = Settings(
        **{name: getattr(base, name) for name in base.model_fields_set},
        _env_file=None,
        generator="fake",
        telegram_mode="webhook",
        telegram_webhook_url="https://bot.example.com/tg/hook",
        telegram_webhook_path="/tg/hook",
        telegram_webhook_secret=SECRET,
    )
    parts = Components(settings, role="all")
    parts.telegram.webhook_check_s = 0.2  # getWebhookInfo every 0.2 s instead of every minute
    # setWebhook is refused at start: the bot runs, not ready, and sets it again on its next look.
    telegram.fail("setWebhook", 400, "Bad Request: bad webhook: Failed to resolve host", times=1000)
    stop = asyncio.Event()
    service = asyncio.create_task(app.serve(parts, stop))
    try:
        await telegram.wait_for(lambda c: c.method == "setWebhook", timeout=60)
        port = parts.http.port
        body = await eventually_status(port, "/readyz", 503)
        assert body["reasons"]["telegram"] in ("setWebhook failed (400)", "the webhook points elsewhere or is not set")
        assert not service.done()
        telegram.heal("setWebhook")
        await eventually_status(port, "/readyz", 200)
        assert telegram.webhook_url == "https://bot.example.com/tg/hook"
        assert await metric(port, "p2p_telegram_webhook_up") == {(): 1.0}

        # Telegram cannot reach us (it says so in getWebhookInfo's last error): exported for the
        # alerts, but the pod stays ready, as taking it out of the Service would keep the errors going.
        telegram.webhook_error = (int(time.time()), "Wrong response from the webhook: 502 Bad Gateway")
        deadline = time.monotonic() + 10
        while await metric(port, "p2p_telegram_webhook_up") != {(): 0.0}:
            assert time.monotonic() < deadline, "p2p_telegram_webhook_up never went to 0"
            await asyncio.sleep(0.1)
        assert (await get(port, "/readyz"))[0] == 200
        telegram.webhook_error = None
        deadline = time.monotonic() + 10
        while await metric(port, "p2p_telegram_webhook_up") != {(): 1.0}:
            assert time.monotonic() < deadline, "p2p_telegram_webhook_up never came back to 1"
            await asyncio.sleep(0.1)

        # Another process replaced the webhook: it is set back, and readiness recovers.
        telegram.webhook_url = "https://elsewhere.example.com/hook"
        await telegram.wait_for(
            lambda c: c.method == "setWebhook" and c.ok and len(telegram.calls_of("setWebhook")) >= 3, timeout=10
        )
        await eventually_status(port, "/readyz", 200)
        assert telegram.webhook_url == "https://bot.example.com/tg/hook"
    finally:
        stop.set()
        assert await asyncio.wait_for(service, 30) == 0


@pytest.mark.parametrize("loop", ["deliver", "worker"])
async def test_a_dead_loop_fails_liveness(tmp_path, monkeypatch, telegram, loop):
    async def dies(self: Any, stop: asyncio.Event) -> None:
        raise RuntimeError(f"the {loop} loop broke")

    monkeypatch.setattr(DeliverResults if loop == "deliver" else ProcessJobs, "run", dies)
    parts = Components(settings_for(telegram.base_url, telegram.token, tmp_path), role="all")
    stop = asyncio.Event()
    service = asyncio.create_task(app.serve(parts, stop))
    try:
        await telegram.wait_polling(timeout=60)
        body = await eventually_status(parts.http.port, "/healthz", 503)
        assert body["status"] == "dead"
        assert loop in body["reason"]
    finally:
        stop.set()
        assert await asyncio.wait_for(service, 30) == 0


async def test_a_live_service_is_alive(start_service):
    service = await start_service()
    body = await eventually_status(service.parts.http.port, "/healthz", 200)
    assert body["checks"] == {"backlog": True, "worker": True, "telegram": True}
