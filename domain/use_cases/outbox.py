"""The bot's outbox relay: publish again what was recorded but never reached the queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.errors import QueueUnavailable
from domain.models import ErrorCode
from domain.ports import JobQueue, UserStore
from domain.use_cases.credits import SpendCredits
from domain.use_cases.submit import SubmitPrompt
from domain.users import JobRecord, JobState, Outcome

log = logging.getLogger(__name__)


@dataclass
class PublishOutbox:
    """The bot's outbox relay. A prompt is recorded (queued, unpublished) before the user is
    told it is accepted, and marked published once the queue has it. Whatever was recorded and
    never confirmed (the bot died in between, or the broker did not answer) is published again
    here, under its own job id (workers deduplicate by it). While the queue is not ready
    nothing is tried; a job that could not be published for ``expiry_s`` fails honestly."""

    queue: JobQueue
    store: UserStore
    submit: SubmitPrompt
    interval_s: float = 2.0
    min_age_s: float = 3.0  # younger ones are still on their way through the front
    expiry_s: float = 3600.0
    concurrency: int = 16
    on_expired: Callable[[JobRecord], Awaitable[None]] | None = None
    clock: Callable[[], float] = time.time
    credits: SpendCredits | None = None  # a paid job that never reached the queue gives its credit back

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("the outbox pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def run_once(self) -> int:
        """One pass; returns how many jobs it published."""
        now = self.clock()
        pending = [
            r for r in await self.store.unpublished(now - self.min_age_s) if r.job_id not in self.submit.in_flight
        ]
        if not pending:
            return 0
        expired = [r for r in pending if now - r.created_at > self.expiry_s]
        for record in expired:
            log.warning("job %s never reached the queue; it fails", record.job_id)
            ended = await self.store.finish(
                record.job_id, Outcome(JobState.FAILED, now, error_code=ErrorCode.QUEUE_UNAVAILABLE.value)
            )
            if self.credits is not None:
                await self.credits.give_back(ended)
            if self.on_expired is not None:
                await self.on_expired(record)
        todo = [r for r in pending if r not in expired]
        if not todo or not self.queue.is_ready():
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def publish(record: JobRecord) -> bool:
            async with gate:
                try:
                    await self.submit.publish(record.job())
                except QueueUnavailable:
                    return False
                await self.store.mark_published(record.job_id, self.clock())
                return True

        published = sum(await asyncio.gather(*(publish(r) for r in todo)))
        if published:
            log.info("outbox: %d job(s) published again", published)
        return published
