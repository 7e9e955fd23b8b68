"""One Bot API call for a chat, paced (adapters/telegram/pacing.py) and tried again when a later
try may get through (``Sender``'s second half).

- ``TelegramRetryAfter``: the chat waits ``retry_after`` seconds, then the call is tried again.
- Network errors, 5xx and undecodable answers: retried with exponential backoff, up to
  ``max_attempts`` tries (never sooner than the chat's interval).
- ``TelegramForbiddenError`` (the user blocked the bot, or left): recorded through ``on_blocked``
  and raised as ``domain.errors.RecipientGone``; never retried. From then on nothing more goes to
  that chat (every call raises ``RecipientGone`` without reaching Telegram) until ``reachable``
  says the user wrote again.
- Other errors (bad request, entity too large...) are raised at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
)

from adapters.telegram.pacing import ChatLine, Pacer, TryPause
from adapters.telegram.rate_window import Priority
from domain.errors import RecipientGone

log = logging.getLogger(__name__)
T = TypeVar("T")

# Tried again: flood control (after its wait) and what a later try may get through. Not
# TelegramEntityTooLarge, a TelegramNetworkError that no try will get through.
_RETRIED = (TelegramRetryAfter, TelegramNetworkError, TelegramServerError, ClientDecodeError)


class BotCalls:
    def __init__(
        self,
        pacer: Pacer,
        *,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        on_blocked: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.pacer = pacer
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_blocked = on_blocked
        self.unreachable: set[int] = set()  # chats that answered 403: nothing more goes there
        self.sent = 0  # calls that went through, for /stats and tests
        self.retried = 0

    def reachable(self, chat_id: int) -> None:
        """The user wrote again (so unblocked the bot): sending to the chat is allowed again."""
        self.unreachable.discard(chat_id)

    def is_reachable(self, chat_id: int) -> bool:
        return chat_id not in self.unreachable

    async def call(
        self,
        chat_id: int,
        make_call: Callable[[], Awaitable[T]],
        *,
        priority: Priority = Priority.INTERACTIVE,
        paced: bool = True,
        in_line: bool = False,
        attempts: int | None = None,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """Run one Bot API call for ``chat_id`` under the limits, retrying what can be retried.

        ``paced=False``: not a message (chat actions): skips the chat's line but still counts
        against the overall rate; with ``in_line`` (deletions) it waits its turn in the chat's
        line, unpaced. ``on_sent``: awaited the moment Telegram has answered the call, before any
        bookkeeping here (the delivery confirms its claim in it: the shorter the gap between
        Telegram's answer and that record, the less a killed process sends twice)."""
        attempts = attempts or self.max_attempts
        if chat_id in self.unreachable:
            raise RecipientGone(chat_id=chat_id)
        chat = self.pacer.chat(chat_id)
        backoff = _Backoff(self.backoff_s, self.max_backoff_s)
        # In the chat's line, its place taken before anything is awaited (``Pacer.line``).
        async with self.pacer.line(chat) if paced or in_line else contextlib.nullcontext():
            retrying = AsyncRetrying(
                stop=stop_after_attempt(attempts),
                retry=retry_if_exception_type(_RETRIED) & retry_if_not_exception_type(TelegramEntityTooLarge),
                # A paced call waits for the chat's next turn (next_at, which holds the pause) at
                # the start of its next try; an unpaced one sleeps the pause here.
                wait=lambda _: 0.0 if paced else backoff.pause.seconds,
                before_sleep=self._count_retry,
                reraise=True,
            )
            async for one_try in retrying:
                with one_try:
                    tried = f"try {one_try.retry_state.attempt_number}/{attempts}"
                    return await self._try(chat, make_call, priority, paced, on_sent, backoff, tried)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _try(
        self,
        chat: ChatLine,
        make_call: Callable[[], Awaitable[T]],
        priority: Priority,
        paced: bool,
        on_sent: Callable[[], Awaitable[None]] | None,
        backoff: _Backoff,
        tried: str,
    ) -> T:
        chat_id = chat.chat_id
        if paced:
            await self.pacer.next_turn(chat)
        if chat_id in self.unreachable:  # found out while this call waited in line
            raise RecipientGone(chat_id=chat_id)
        backoff.pause = pause = TryPause()
        async with self.pacer.one_try(chat, paced=paced, pause=pause):
            try:
                async with self.pacer.slot(priority):
                    result = await make_call()
                if on_sent is not None:
                    await on_sent()
                self.sent += 1
                return result
            except asyncio.CancelledError:
                pause.seconds = chat.interval + 1.0  # it may still reach Telegram a little later
                raise
            except TelegramRetryAfter as exc:
                pause.seconds = float(exc.retry_after)
                log.info("flood control on chat %s: waiting %.0fs", chat_id, pause.seconds)
                raise
            except TelegramForbiddenError as exc:
                await self._blocked(chat_id, exc.message)
                raise RecipientGone(chat_id=chat_id) from exc
            except TelegramEntityTooLarge:
                raise  # sending it again will not make it smaller
            except _RETRIED as exc:  # network and server errors, undecodable answers
                pause.seconds = backoff.next()
                log.info("Bot API call for chat %s failed (%s, %s)", chat_id, type(exc).__name__, tried)
                raise

    async def _blocked(self, chat_id: int, why: str) -> None:
        log.info("chat %s cannot be reached: %s", chat_id, why)
        if chat_id:
            self.unreachable.add(chat_id)
        if self.on_blocked is not None:
            with contextlib.suppress(Exception):
                await self.on_blocked(chat_id)

    def _count_retry(self, _: RetryCallState) -> None:
        self.retried += 1


class _Backoff:
    """The pauses after network or server errors (doubling up to a cap), and the pause the
    last failed try asked for."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self.delay = first_s
        self.max_s = max_s
        self.pause = TryPause()

    def next(self) -> float:
        pause, self.delay = self.delay, min(self.delay * 2, self.max_s)
        return pause
