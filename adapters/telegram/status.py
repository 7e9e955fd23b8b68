"""Live status: the "queued, position N" message edited as the job starts and progresses.

Workers report progress about once a second per job; a chat must not get more than about one
message a second, and a status is worth showing only when it changes. So each job's status message
is edited by at most one flusher at a time, no sooner than ``interval_s`` after the previous edit
(longer when many jobs are live: all their edits together stay within ``edits_per_s``, a share of
the bot's outbound rate, so that pictures and replies are not starved by progress bars),
and always with the *latest* text (intermediate ones are dropped). When the result arrives the job
is closed: pending edits are dropped and late progress is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.telegram.outside import OutsideMessages
from adapters.telegram.sender import Priority, Sender
from domain.models import Stage

QUEUED = "queued"  # the board's stage of a job no worker has reported on yet
_STAGE_RANK = {QUEUED: 0, Stage.STARTED: 1, Stage.GENERATING: 2, Stage.UPLOADING: 3}


def progress_bar(percent: int, width: int = 10) -> str:
    filled = max(0, min(width, round(percent * width / 100)))
    return "▓" * filled + "░" * (width - filled)


@dataclass
class _Live:
    chat_id: int
    message_id: int
    sent: str | None = None
    last_at: float = 0.0
    wanted: tuple[str, Any] | None = None
    stage: str = QUEUED
    percent: int = 0
    sending: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    locale: Any = None  # the job's, for re-telling its place in line
    prompt: str = ""
    inline_id: str | None = None  # an inline message (a guest query's answer), edited by this id


class StatusBoard:
    def __init__(
        self,
        sender: Sender,
        interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        edits_per_s: float = 10.0,
    ) -> None:
        self.sender = sender
        self.outside = OutsideMessages(sender)
        self.base_interval_s = interval_s
        self.edits_per_s = max(0.1, edits_per_s)
        self.clock = clock
        self._live: dict[str, _Live] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self.edits = 0

    @property
    def interval_s(self) -> float:
        """Least time between two edits of one status: the setting, or longer with many live."""
        return max(self.base_interval_s, len(self._live) / self.edits_per_s)

    def opened(
        self,
        job_id: str,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        locale: Any = None,
        prompt: str = "",
        inline_id: str | None = None,
    ) -> None:
        """The status message was just sent with ``text`` (the job is in line); ``inline_id``:
        it is an inline message (``message_id`` is then 0)."""
        if job_id in self._closed:
            return
        self._live[job_id] = _Live(
            chat_id, message_id, sent=text, last_at=self.clock(), locale=locale, prompt=prompt, inline_id=inline_id
        )

    def waiting(self) -> dict[str, tuple[int, int, Any, str] | None]:
        """Jobs whose status still says "queued": (chat, message, locale, prompt)."""
        return {
            job_id: (live.chat_id, live.message_id, live.locale, live.prompt) if live.locale is not None else None
            for job_id, live in self._live.items()
            if live.stage == QUEUED and live.inline_id is None  # (an inline one: told when it starts)
        }

    def stage(self, job_id: str) -> tuple[str, int] | None:
        live = self._live.get(job_id)
        return (live.stage, live.percent) if live else None

    def show(
        self,
        job_id: str,
        chat_id: int,
        message_id: int,
        text: str,
        markup: Any = None,
        *,
        stage: str = "",
        percent: int = 0,
        inline_id: str | None = None,
    ) -> None:
        """Have the status message say ``text`` soon (coalesced, throttled); returns at once."""
        if job_id in self._closed:
            return
        live = self._live.get(job_id)
        if live is None:
            live = self._live[job_id] = _Live(chat_id, message_id, inline_id=inline_id)
        if stage:
            # Events of one job may be handled out of order (a batch is handled concurrently,
            # or the queue reorders): never go back from 40% to "started".
            new, old = (_STAGE_RANK.get(stage, 0), percent), (_STAGE_RANK.get(live.stage, 0), live.percent)
            if new < old:
                return
            live.stage, live.percent = stage, percent
        live.wanted = (text, markup)
        if live.task is None or live.task.done():
            live.task = asyncio.create_task(self._flush(job_id, live), name=f"status-{job_id}")

    async def _flush(self, job_id: str, live: _Live) -> None:
        while live.wanted is not None and live.wanted[0] != live.sent:
            wait = live.last_at + self.interval_s - self.clock()  # (as many live jobs as now)
            if wait > 0:
                await asyncio.sleep(wait)
            if self._live.get(job_id) is not live or live.wanted is None:
                return
            text, markup = live.wanted
            live.last_at = self.clock()
            live.sending = True
            try:
                await self._edit(live, text, markup)
                self.edits += 1
            except Exception:  # a lost status edit is harmless; the result is what matters
                live.sent = text
                return
            finally:
                live.sending = False
            live.last_at = self.clock()
            live.sent = text

    async def _edit(self, live: _Live, text: str, markup: Any) -> None:
        if live.inline_id is not None:
            await self.outside.edit_inline_text(
                live.chat_id, live.inline_id, text, reply_markup=markup, priority=Priority.STATUS, attempts=2
            )
            return
        await self.sender.edit_text(
            live.chat_id, live.message_id, text, reply_markup=markup, priority=Priority.STATUS, attempts=2
        )

    def forget(self, job_id: str) -> None:
        """Stop keeping this job's status here without closing it (another instance, or a later
        event, may still show it)."""
        live = self._live.pop(job_id, None)
        if live is not None and live.task is not None and not live.task.done() and not live.sending:
            live.task.cancel()

    def close(self, job_id: str) -> None:
        """No more edits for this job (its result arrived, or it was cancelled)."""
        self._closed[job_id] = None
        while len(self._closed) > 50_000:
            self._closed.popitem(last=False)
        live = self._live.pop(job_id, None)
        # A pending edit is dropped; one already on its way is left to finish (cancelled halfway,
        # nobody would know when Telegram saw it, and the chat's pacing would be off).
        if live is not None and live.task is not None and not live.task.done() and not live.sending:
            live.task.cancel()

    def is_closed(self, job_id: str) -> bool:
        return job_id in self._closed

    async def stop(self) -> None:
        tasks = [live.task for live in self._live.values() if live.task and not live.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
