"""Pacing of the Bot API calls (``Sender``'s first half; retrying is adapters/telegram/retrying.py):
Telegram's limits kept.

- Overall: at most ``rate`` calls in any window of ``window_s`` (``RateWindow``), waiting calls
  served by priority, and within a priority whoever has waited longest (``serving``).
- Per chat: one call at a time, in the order they were made (the chat's line), the next no sooner
  than the chat's interval after the previous one *finished*; a pause asked by flood control
  stretches it. A handler whose call must wait long in the line (``hold_turn_s``) hands over its
  update's turn (adapters/telegram/turns.py).
- Several bot instances hold a chat across instances around each paced call (``shared``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

from adapters.telegram.rate_window import Priority, RateWindow
from adapters.telegram.turns import Turn, held_turn

# When the user whose calls are being made asked (epoch seconds), set by ``serving``.
_waiting_since: contextvars.ContextVar[float] = contextvars.ContextVar("waiting_since", default=0.0)


@contextlib.contextmanager
def serving(since: float) -> Iterator[None]:
    """The calls made in this block (and the tasks it starts) are for a user waiting since
    ``since`` (epoch seconds; 0: now): within a priority, the overall budget goes to whoever
    has waited longest. So results come out oldest first across the whole backlog, and one
    taken over from a bot that died, which waited out its lease, goes before newer ones."""
    token = _waiting_since.set(since)
    try:
        yield
    finally:
        _waiting_since.reset(token)


class SharedPacing(Protocol):
    """Per-chat pacing shared with other bot instances."""

    async def acquire(self, chat_id: int) -> bool: ...

    async def release(self, chat_id: int, next_in_s: float) -> None: ...


class ChatLine:
    __slots__ = ("chat_id", "interval", "lock", "next_at", "queued", "turns")

    def __init__(self, chat_id: int, interval: float) -> None:
        self.chat_id = chat_id
        self.interval = interval
        self.lock = asyncio.Lock()  # the chat's line (asyncio's lock serves its waiters first come, first served)
        self.next_at = 0.0
        self.queued = 0  # calls in the line, the one being made included
        self.turns: set[Turn] = set()  # the updates' turns held by calls in the line

    def hand_over_turns(self) -> None:
        for turn in self.turns:
            turn.hand_over()


class TryPause:
    """The pause a failed try asks for before the chat's next call (flood control, backoff)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


class Pacer:
    def __init__(
        self,
        *,
        rate: float = 30.0,
        window_s: float = 1.0,
        rate_per_chat: float = 1.0,
        group_interval_s: float = 3.0,
        shared: SharedPacing | None = None,
        hold_turn_s: float = 10.0,
    ) -> None:
        self.bucket = RateWindow(max(1, round(rate * window_s)), window_s)
        self.chat_interval = 1.0 / rate_per_chat if rate_per_chat > 0 else 0.0
        self.group_interval = max(self.chat_interval, group_interval_s)
        self.shared = shared
        # A handler whose call would wait longer than this in its chat's line hands over its turn.
        self.hold_turn_s = hold_turn_s
        self._chats: dict[int, ChatLine] = {}

    def interval(self, chat_id: int) -> float:
        return self.group_interval if chat_id < 0 else self.chat_interval

    def chat(self, chat_id: int) -> ChatLine:
        chat = self._chats.get(chat_id)
        if chat is None:
            if len(self._chats) > 10_000:  # forget idle chats
                now = time.monotonic()
                for key in [k for k, c in self._chats.items() if not c.queued and c.next_at < now]:
                    del self._chats[key]
            chat = self._chats[chat_id] = ChatLine(chat_id, self.interval(chat_id))
        return chat

    @contextlib.asynccontextmanager
    async def line(self, chat: ChatLine) -> AsyncIterator[None]:
        """Wait in the chat's line (first come, first served). The place is taken before
        anything is awaited; an update's handler whose call would wait long in it hands over its
        turn (adapters/telegram/turns.py), and so do those in the line when a pause (flood
        control) makes their wait long."""
        turn = held_turn()
        if turn is not None:
            if max(0.0, chat.next_at - time.monotonic()) + chat.queued * chat.interval > self.hold_turn_s:
                turn.hand_over()  # a long wait: the chat's next updates need not wait for it
            else:
                chat.turns.add(turn)
        chat.queued += 1
        try:
            async with chat.lock:
                yield
        finally:
            chat.queued -= 1
            if turn is not None:
                chat.turns.discard(turn)

    async def next_turn(self, chat: ChatLine) -> None:
        """Until the chat's interval (or a pause asked for) since its last call has passed."""
        wait = chat.next_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    @contextlib.asynccontextmanager
    async def one_try(self, chat: ChatLine, *, paced: bool, pause: TryPause) -> AsyncIterator[None]:
        """Around one try of a call: the chat held across instances (paced calls); after it,
        the chat's next call no sooner than its interval or the ``pause`` the try asked for,
        and a long pause hands the waiting handlers' turns over."""
        held = paced and self.shared is not None and await self.shared.acquire(chat.chat_id)
        try:
            yield
        finally:
            after = max(chat.interval, pause.seconds)
            if paced:
                chat.next_at = time.monotonic() + after
            if after + (chat.queued - 1) * chat.interval > self.hold_turn_s:
                chat.hand_over_turns()  # flood control: the line's handlers wait long
            if held and self.shared is not None:
                await asyncio.shield(self.shared.release(chat.chat_id, after))

    def slot(self, priority: Priority) -> contextlib.AbstractAsyncContextManager[None]:
        """A place in the overall budget, by priority, then by how long the user has waited."""
        return self.bucket.slot(priority, _waiting_since.get() or time.time())
