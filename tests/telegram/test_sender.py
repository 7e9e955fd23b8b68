"""The one outbound sender: overall rate with priorities, per-chat pacing, flood control,
retries with backoff, blocked users."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

import pytest
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage

from adapters.telegram.captions import fits_photo
from adapters.telegram.rate_window import Priority, RateWindow
from adapters.telegram.sender import Sender
from domain.errors import RecipientGone

METHOD = SendMessage(chat_id=1, text="x")


def make_sender(**kwargs) -> Sender:
    return Sender(bot=None, **kwargs)  # type: ignore[arg-type]


class Script:
    """A Bot API call that fails as scripted, then succeeds; records when it was tried."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.tried: list[float] = []

    async def __call__(self) -> str:
        self.tried.append(time.monotonic())
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_bucket_serves_by_priority_then_order():
    bucket = RateWindow(limit=1, window_s=0.02)
    async with bucket.slot():  # fills it
        pass
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        async with bucket.slot(priority):
            order.append(name)

    tasks = [
        asyncio.create_task(take(n, p))
        for n, p in (
            ("status-1", Priority.STATUS),
            ("result-1", Priority.RESULT),
            ("reply-1", Priority.INTERACTIVE),
            ("reply-2", Priority.INTERACTIVE),
            ("status-2", Priority.STATUS),
        )
    ]
    await asyncio.sleep(0)  # all waiting before the first token comes back
    await asyncio.gather(*tasks)
    assert order == ["reply-1", "reply-2", "result-1", "status-1", "status-2"]
    bucket.close()


async def test_results_go_out_oldest_prompt_first_whatever_order_they_came_in():
    """A backlog at the overall rate (a bot that took over a dead one's results): within a
    priority the user who has waited longest goes first, not the one whose call came first."""
    sender = make_sender(rate=1.0, window_s=0.05, rate_per_chat=0)
    async with sender.pacer.bucket.slot():  # the window is full
        pass
    order: list[int] = []

    async def deliver(chat: int, asked_at: float) -> None:
        async def call() -> None:
            order.append(chat)

        with sender.serving(asked_at):
            await sender.call(chat, call, priority=Priority.RESULT)

    now = time.time()
    tasks = [asyncio.create_task(deliver(chat, now - age)) for chat, age in ((1, 5.0), (2, 40.0), (3, 0.0), (4, 20.0))]
    await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [2, 4, 1, 3]
    sender.close()


async def test_chat_actions_only_use_spare_budget_and_never_hold_a_message_back():
    """'Sending a photo...' is a courtesy: with the budget in use it is skipped, not queued (a
    few hundred deliveries waiting for the budget would otherwise repeat more actions a second
    than the whole budget, and no picture would get through)."""
    calls: list[str] = []

    class Bot:
        async def send_chat_action(self, chat_id, action):
            calls.append(f"action {chat_id}")

    sender = Sender(bot=Bot(), rate=1.0, window_s=0.3, rate_per_chat=0)  # type: ignore[arg-type]
    await sender.chat_action_once(1, "upload_photo")  # spare budget: it goes
    assert calls == ["action 1"]

    async def message() -> None:
        calls.append("message 2")

    waiting = asyncio.create_task(sender.call(2, message, priority=Priority.RESULT))
    await asyncio.sleep(0.05)  # the window is used up: the message waits for the next slot
    for _ in range(5):
        await sender.chat_action_once(3, "upload_photo")  # skipped, takes no slot
    await waiting
    assert calls == ["action 1", "message 2"]
    sender.close()


async def test_window_never_lets_more_than_its_limit_through_in_any_window():
    """A backlog of 100 calls at once (a restarted bot): never more than 30 in any second."""
    bucket = RateWindow(limit=30, window_s=0.2)  # the 30/s rule, five times faster
    granted: list[float] = []

    async def take(i: int) -> None:
        async with bucket.slot(Priority.RESULT):
            # the request reaches the server some time while the call runs: here at its end,
            # after a delay that varies (a busy event loop, a slow network)
            await asyncio.sleep(0.05 * (i % 3))
            granted.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(take(i) for i in range(100)))
    elapsed = time.monotonic() - started
    granted.sort()
    busiest = max(sum(1 for u in granted[i:] if u - t < 0.2) for i, t in enumerate(granted))
    assert 25 <= busiest <= 30  # near full use of the window, never more
    assert 0.6 <= elapsed < 2.0  # 100 calls at 30 per 0.2 s: at least three windows after the first
    bucket.close()


async def test_per_chat_pacing_and_other_chats_unaffected():
    sender = make_sender(rate=1000, rate_per_chat=5)  # 0.2 s per chat
    calls = {chat: Script() for chat in (1, 2)}
    started = time.monotonic()
    await asyncio.gather(*(sender.call(chat, calls[chat]) for chat in (1, 1, 1, 2)))
    one = calls[1].tried
    assert all(b - a >= 0.2 for a, b in pairwise(one))
    assert calls[2].tried[0] - started < 0.1
    sender.close()


async def test_retry_after_is_waited_out():
    sender = make_sender(rate_per_chat=100)
    call = Script(TelegramRetryAfter(method=METHOD, message="Too Many Requests", retry_after=1))
    assert await sender.call(1, call) == "ok"
    assert call.tried[1] - call.tried[0] >= 1.0
    sender.close()


async def test_server_and_network_errors_back_off_then_give_up():
    sender = make_sender(rate_per_chat=1000, max_attempts=3, backoff_s=0.05)
    call = Script(
        TelegramServerError(method=METHOD, message="Bad Gateway"), TelegramNetworkError(method=METHOD, message="reset")
    )
    assert await sender.call(1, call) == "ok"
    gaps = [b - a for a, b in pairwise(call.tried)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # doubling
    failing = Script(*[TelegramServerError(method=METHOD, message="Bad Gateway")] * 5)
    with pytest.raises(TelegramServerError):
        await sender.call(1, failing)
    assert len(failing.tried) == 3
    sender.close()


async def test_blocked_user_is_recorded_and_not_retried():
    blocked: list[int] = []

    async def on_blocked(chat_id: int) -> None:
        blocked.append(chat_id)

    sender = make_sender(on_blocked=on_blocked)
    call = Script(TelegramForbiddenError(method=METHOD, message="Forbidden: bot was blocked by the user"))
    with pytest.raises(RecipientGone):
        await sender.call(7, call)
    assert len(call.tried) == 1 and blocked == [7]
    sender.close()


async def test_bad_request_is_not_retried():
    sender = make_sender()
    call = Script(TelegramBadRequest(method=METHOD, message="Bad Request: chat not found"))
    with pytest.raises(TelegramBadRequest):
        await sender.call(1, call)
    assert len(call.tried) == 1
    sender.close()


def test_photo_limits():
    assert fits_photo(1024, 1024, 2_000_000)
    assert not fits_photo(1024, 1024, 10 * 1024 * 1024)  # 10 MB
    assert not fits_photo(6000, 4100, 1000)  # width + height over 10000
    assert not fits_photo(2100, 100, 1000)  # ratio over 20
    assert fits_photo(2000, 100, 1000)
