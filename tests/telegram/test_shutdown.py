"""The bot's stop honours SHUTDOWN_GRACE_S: replies in hand drain for that long (not a fixed few
seconds), and one still waiting when it ends is cut short without being lost."""

from __future__ import annotations

import asyncio
import json

from tests.telegram.helpers import Chat


async def test_replies_drain_for_the_whole_grace_period(start_service, telegram):
    """A picture waiting out Telegram's 7 s flood control when the stop comes is still sent: the
    grace period (20 s here) covers it, where a fixed 5 s drain cut it off."""
    service = await start_service(shutdown_grace_s=20, send_rate_per_chat=20)
    telegram.fail("sendPhoto", 429, "Too Many Requests: retry after 7", retry_after=7)
    telegram.send_text(800, "a quick fox")
    [flooded] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 800, timeout=15)
    assert flooded.params["_failed"] == 429
    loop = asyncio.get_running_loop()
    stopping = loop.time()
    service.stop.set()
    assert await asyncio.wait_for(service.task, 30) == 0
    assert loop.time() - stopping > 5.5  # it waited past the old fixed drain
    assert [c for c in telegram.calls_of("sendPhoto", 800) if c.ok]  # and the picture went out


async def test_a_short_grace_period_cuts_the_drain_and_keeps_the_reply(start_service, telegram, tmp_path):
    """With SHUTDOWN_GRACE_S=2 the stop ends in about 2 s (not 1 + 5), and the result still
    waiting out its flood control is kept for the next start (the embedded queue's file)."""
    service = await start_service(shutdown_grace_s=2, send_rate_per_chat=20)
    telegram.fail("sendPhoto", 429, "Too Many Requests: retry after 30", retry_after=30)
    chat = Chat(telegram, 801)
    chat.send("a slow snail")
    await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 801, timeout=15)
    loop = asyncio.get_running_loop()
    stopping = loop.time()
    service.stop.set()
    assert await asyncio.wait_for(service.task, 30) == 0
    assert loop.time() - stopping < 4.5
    assert not [c for c in telegram.calls_of("sendPhoto", 801) if c.ok]
    saved = json.loads((tmp_path / "queue.json").read_text())
    assert len(saved["results"]) == 1  # the unsent result is owed again after the restart
