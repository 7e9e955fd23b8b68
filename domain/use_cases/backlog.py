"""Measure the group's backlog on a clock, whatever the process is doing.

The backlog (consumer lag of the worker group) is one figure for the whole group. A worker
measures it when it plans a batch, but not while a batch runs (minutes on a CPU), and a worker
that died measures nothing: exactly when the figure matters. So every process that has the
queue (bot and worker) measures it every ``every_s`` seconds and exports it; each reports the
same group-wide figure, and dashboards and alerts take ``max()`` of it, never ``sum()``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from domain.ports import JobQueue, Metrics

log = logging.getLogger(__name__)


@dataclass
class WatchBacklog:
    queue: JobQueue
    metrics: Metrics
    every_s: float = 5.0

    async def measure(self) -> int | None:
        """The backlog now, exported; None when the queue cannot tell (the last figure then
        ages out of the metrics instead of being reported as current)."""
        try:
            jobs = await self.queue.backlog()
        except Exception as exc:
            log.debug("the backlog cannot be measured now (%s)", type(exc).__name__)
            return None
        self.metrics.consumer_lag(jobs)
        return jobs

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.measure()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)
