"""The bridge between the event loop and the one thread that runs torch.

Everything torch does (loading, warm-up, generation) runs on one dedicated thread, so the event
loop never waits on the model. Progress is reported on the event loop through the caller's
callback, in order; when the awaiting task is cancelled, the work is told so and stops at its
next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from domain.ports import ProgressCallback

log = logging.getLogger(__name__)

T = TypeVar("T")

# work(on_step, cancel): calls on_step() after each step and stops once cancel is set.
Work = Callable[[Callable[[], None], threading.Event], T]


class GenerationThread:
    """One worker thread (named ``<name>_0``), started on first use and again after ``close``."""

    def __init__(self, name: str = "wuerstchen") -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None

    def _current(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return self._executor

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the thread, after what was asked of it before."""
        return await asyncio.get_running_loop().run_in_executor(self._current(), fn, *args)

    async def start(self, load: Callable[[], None], loaded: Callable[[], bool]) -> None:
        """Run ``load`` on the thread; when it fails and nothing is ``loaded``, let the thread go
        (unless ``close`` came meanwhile and a later start made another one)."""
        executor = self._current()
        try:
            await asyncio.get_running_loop().run_in_executor(executor, load)
        except BaseException:
            if self._executor is executor and not loaded():
                executor.shutdown(wait=False)
                self._executor = None
            raise

    async def run(self, work: Work[T], total: int, progress: ProgressCallback | None = None) -> T:
        """``work(on_step, cancel)`` on the thread. Each ``on_step()`` there reports
        ``progress(step, total)`` on the event loop (best effort: a failing callback is logged and
        skipped); cancelling the awaiting task sets ``cancel``."""
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        steps: asyncio.Queue[int | None] = asyncio.Queue()
        reporter = asyncio.create_task(_report(steps, progress, total)) if progress else None
        counter = [0]

        def on_step() -> None:  # on the generation thread
            counter[0] += 1
            if reporter is None:
                return
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
                loop.call_soon_threadsafe(steps.put_nowait, counter[0])

        try:
            return await loop.run_in_executor(self._current(), work, on_step, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next step
            raise
        finally:
            if reporter is not None:
                steps.put_nowait(None)
                if cancel.is_set():
                    reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter

    async def close(self) -> None:
        """Let the work in hand finish, then end the thread."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: executor.shutdown(wait=True))


async def _report(steps: asyncio.Queue[int | None], progress: ProgressCallback, total: int) -> None:
    while (step := await steps.get()) is not None:
        try:
            outcome = progress(step, total)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:  # progress is best effort
            log.debug("progress callback failed", exc_info=True)
