"""The overall send budget: at most ``limit`` calls in any window (Telegram allows a bot about
30 messages a second), granted by priority and then to the user who has waited longest."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from enum import IntEnum


class Priority(IntEnum):
    INTERACTIVE = 0  # the answer to a message or a button the user just sent
    RESULT = 1  # finished pictures and failures
    STATUS = 2  # live-status edits, clean-up


class RateWindow:
    """At most ``limit`` calls in any ``window_s`` seconds, as the server sees them.

    A call holds its slot from the grant until it has finished, and for ``window_s`` after that:
    a server sees a request somewhere between the two, so counting finished calls by their finish
    time (not by when they were let go) keeps any window of arrivals within ``limit`` even when
    requests are delayed on their way and arrive bunched. Waiters are served by priority, then
    the longest-waiting user first (``since``: when the user asked; arrival order among equals)."""

    def __init__(self, limit: int, window_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = max(1, int(limit))
        self.window_s = window_s
        self.clock = clock
        self._finished: deque[float] = deque()  # finish times within the window
        self._running = 0
        self._waiters: list[tuple[int, float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._freed = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None

    def _wait_s(self) -> float | None:
        """Seconds until a slot frees by time (0: one is free now; None: only a finishing call
        can free one)."""
        now = self.clock()
        while self._finished and now - self._finished[0] >= self.window_s:
            self._finished.popleft()
        if self._running + len(self._finished) < self.limit:
            return 0.0
        if not self._finished:
            return None
        return self._finished[0] + self.window_s - now

    @contextlib.asynccontextmanager
    async def slot(self, priority: int = Priority.INTERACTIVE, since: float = 0.0) -> AsyncIterator[None]:
        await self._acquire(priority, since)
        try:
            yield
        finally:
            self._running -= 1
            self._finished.append(self.clock())
            self._freed.set()

    def is_free(self) -> bool:
        """A call now would go at once: no one waiting, a slot free."""
        return not self._waiters and self._wait_s() == 0.0

    async def _acquire(self, priority: int, since: float = 0.0) -> None:
        if not self._waiters and self._wait_s() == 0.0:
            self._running += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), since, next(self._seq), future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="send-window")
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._running -= 1  # granted but not used: give it back
                self._freed.set()
            raise

    async def _drain(self) -> None:
        while self._waiters:
            wait = self._wait_s()
            if wait != 0.0:
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), wait)
                continue
            *_, future = heapq.heappop(self._waiters)
            if future.done():  # its caller was cancelled
                continue
            self._running += 1
            future.set_result(None)

    def set_limit(self, limit: int) -> None:
        """Calls in any window from now on (a share of a budget that changed)."""
        self.limit = max(1, int(limit))
        self._freed.set()

    def close(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
