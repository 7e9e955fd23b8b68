"""Admit prompts (bot side): the limits, the lane, the live status, the queue; cancel a job;
repeat one with new seeds. What the user reads is the ``Announcer``'s (the chat adapter)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from domain.errors import AlreadyAccepted, LimitExceeded, QueueUnavailable, RecipientGone
from domain.lanes import LANE_ORDER, LaneDecision, LaneReason, LaneRules, plan_lanes, usage_since
from domain.models import Cancel, Job, Locale
from domain.ports import Announcer, JobQueue, Metrics, UserStore
from domain.telemetry import NoMetrics
from domain.use_cases.credits import SpendCredits
from domain.use_cases.submit import SubmitPrompt
from domain.users import JobRecord, JobState, Outcome, UserLimits
from domain.waits import WaitEstimator

log = logging.getLogger(__name__)


@dataclass
class AdmitJobs:
    """Admit jobs (all of one user) against the limits, then for each: the status reply, then
    the queue. Returns the jobs accepted.

    Admission records each job (the outbox) before the user is told anything, so a job is never
    lost: if this process dies before the publish, or the queue does not answer, the outbox
    (``PublishOutbox``) publishes it later and the user is told it is waiting for the service,
    not that it was refused. The same message admitted again (``AlreadyAccepted``: a restart) is
    ignored.

    Each job's lane (``domain.lanes.choose_lane``) is decided from the user's usage in the store
    before the job is recorded, so the record, the queue and the live status agree on it."""

    submit: SubmitPrompt
    store: UserStore
    announcer: Announcer
    limits: UserLimits = field(default_factory=UserLimits)
    lanes: LaneRules = field(default_factory=LaneRules)
    clock: Callable[[], float] = time.time
    metrics: Metrics = field(default_factory=NoMetrics)
    # The wait estimates learn from admissions how fast jobs come (how full a waiting job's batch
    # will be): the chat adapter's estimator, when it has one.
    waits: WaitEstimator | None = None
    # Credits bought with Stars (PAYMENTS=stars): one is spent on each job of a user who has
    # one, once the job is recorded, and given back if the job ends without a picture.
    credits: SpendCredits | None = None
    _chat_locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    async def __call__(self, jobs: Sequence[Job], *, reply_to: int | None = None, album: bool = False) -> list[Job]:
        """``album``: their pictures go out together, as one album."""
        if not jobs:
            return []
        chat_id = jobs[0].chat_id
        lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        try:
            async with lock:  # one chat's requests are answered in the order they came
                return await self._admit(jobs, reply_to=reply_to, album=album)
        finally:
            if not lock.locked() and not lock._waiters:
                self._chat_locks.pop(chat_id, None)

    async def _admit(self, jobs: Sequence[Job], *, reply_to: int | None, album: bool) -> list[Job]:
        now = self.clock()
        # distinct creation times keep the jobs of one request in order in the queue positions
        jobs = [job.model_copy(update={"created_at": now + i * 1e-6}) for i, job in enumerate(jobs)]
        decisions = await self.choose_lanes(jobs, now)
        jobs = [job.model_copy(update={"lane": d.lane}) for job, d in zip(jobs, decisions, strict=True)]
        pending = self.submit.in_flight
        pending.update(job.job_id for job in jobs)  # the outbox leaves them to us
        try:
            await self.store.admit([JobRecord.from_job(j, request_message_id=reply_to) for j in jobs], self.limits, now)
        except LimitExceeded as exc:
            pending.difference_update(job.job_id for job in jobs)
            await self.announcer.refused(jobs[0], exc, reply_to)
            return []
        except AlreadyAccepted:  # the same message again (a restart): it is being handled
            pending.difference_update(job.job_id for job in jobs)
            log.info("job %s was accepted before; the repeated update is ignored", jobs[0].job_id)
            return []
        jobs = await self._recorded(jobs, decisions)
        if self.waits is not None:
            for job in jobs:
                self.waits.arrived(job.created_at)
        if album and len(jobs) >= 2:
            self.announcer.album([job.job_id for job in jobs])
        positions = await self.queue_positions()
        accepted: list[Job] = []
        for i, job in enumerate(jobs):
            try:
                job, active = await self._open_status(job, positions.get(job.job_id, i + 1), reply_to)
            except RecipientGone:
                pending.discard(job.job_id)
                ended = await self.store.finish(
                    job.job_id, Outcome(JobState.FAILED, self.clock(), error_code="recipient_gone")
                )
                if self.credits is not None:
                    await self.credits.give_back(ended)
                continue
            if not active:
                # Cancelled or finished while its status was on the way, its status withdrawn: not
                # published (again). A worker would answer with a result whose delivery ends
                # the status a second time, or draw a picture the user cancelled.
                pending.discard(job.job_id)
                accepted.append(job)
                continue
            try:
                await self.submit.publish(job)
            except QueueUnavailable:
                # Not refused: its fate is unknown, and the outbox publishes it again.
                await self.announcer.waiting_for_service(job)
                accepted.append(job)
                self.metrics.job_accepted()
                continue
            await self.store.mark_published(job.job_id, self.clock())
            accepted.append(job)
            self.metrics.job_accepted()
        return accepted

    async def _recorded(self, jobs: list[Job], decisions: list[LaneDecision]) -> list[Job]:
        """Once the jobs are recorded: their lanes counted, and a credit spent on each job whose
        lane a credit bought (the job as it goes on: paid, at full quality)."""
        for decision in decisions:
            self.metrics.job_lane(decision.lane.value, decision.reason.value)
        if self.credits is None:
            return jobs
        return [
            await self.credits.spend_on(job) if d.reason == LaneReason.CREDIT else job
            for job, d in zip(jobs, decisions, strict=True)
        ]

    async def choose_lanes(self, jobs: Sequence[Job], now: float) -> list[LaneDecision]:
        """The lane of each of one user's ``jobs`` (asked for together), from their usage."""
        recent_since, day_since = usage_since(self.lanes, now)
        usage = await self.store.usage(jobs[0].user_id, recent_since=recent_since, day_since=day_since)
        # Paid credits go first (one a job, the priority lane at full quality), then the usage rules.
        credits = await self.credits.available(jobs[0].user_id) if self.credits is not None else 0
        return plan_lanes(self.lanes, usage, now, len(jobs), credits=credits)

    async def _open_status(self, job: Job, position: int, reply_to: int | None) -> tuple[Job, bool]:
        """Send the job's live status and remember it; the job, with its message id, and
        whether it is still active. A status that cannot be sent does not stop the job
        (``RecipientGone`` does: nobody to draw for)."""
        message_id = await self.announcer.open_status(job, position, reply_to)
        if message_id is None:
            return job, True
        self.metrics.first_reply(max(0.0, self.clock() - job.created_at))
        if isinstance(message_id, str):  # an inline message (a guest query's answer)
            await self.store.set_inline_message(job.job_id, message_id)
        else:
            await self.store.set_status_message(job.job_id, message_id)
            job = job.model_copy(update={"status_message_id": message_id})
        record = await self.store.get_job(job.job_id)
        if record is not None and not record.active:
            # A reply that waited long (flood control, a busy send budget): meanwhile the user
            # cancelled the job, or another bot instance's outbox published it and its result
            # came first. The status goes.
            await self.announcer.withdraw_status(job, message_id)
            return job, False
        return job, True

    async def queue_positions(self) -> dict[str, int]:
        """Each job not started yet and its place in line, from the user store: every bot keeps
        its jobs there (one SQLite file on a host, a server database across hosts), and workers'
        "started" events mark jobs running. (The broker's lag is no measure of it: it counts
        finished jobs not committed yet, cancelled ones and the cancellations themselves.)

        A place is what a user reads it as: how many pictures come before theirs, plus one. The
        jobs being drawn now count (their pictures come first), then the jobs waiting, oldest
        first. Counting only those not started told "position 1" to a user whose picture came
        after a whole batch being drawn (the issue's run: "position 1" got the last picture)."""
        return {record.job_id: place for record, place in await self.in_line()}

    async def in_line(self) -> list[tuple[JobRecord, int]]:
        """The jobs not started yet with their places in line (1: no picture comes before it),
        in the order they go: the priority lane's first, oldest first in each lane (the relaxed
        lane's guaranteed share aside, which only moves a priority job back under a stream of
        priority work)."""
        now = self.clock()
        everyone = await self.store.active_jobs(None, since=now - self.limits.expiry_s)
        drawing = sum(1 for r in everyone if r.state == JobState.RUNNING)
        waiting = sorted((r for r in everyone if r.state == JobState.QUEUED), key=lambda r: LANE_ORDER[r.lane])
        return [(record, drawing + i + 1) for i, record in enumerate(waiting)]


@dataclass
class CancelJob:
    """A user withdraws a job of theirs. The worker holding it answers with a 'cancelled'
    result instead of a picture; if it already started, the picture it makes is dropped on
    delivery (the store says cancelled). A queue that cannot take the message now changes
    nothing for the user."""

    store: UserStore
    queue: JobQueue
    announcer: Announcer
    clock: Callable[[], float] = time.time
    credits: SpendCredits | None = None  # a paid job cancelled gives its credit back

    async def __call__(self, record: JobRecord, user_id: int, locale: Locale) -> bool:
        """False: not theirs, or not active any more."""
        cancelled = await self.store.cancel(record.job_id, user_id, self.clock())
        if cancelled is None:
            return False
        if self.credits is not None:
            await self.credits.give_back(cancelled)
        self.announcer.close_status(record.job_id)
        try:
            await self.queue.publish_cancel(Cancel(job_id=record.job_id, user_id=user_id, lane=record.lane))
        except Exception as exc:
            log.warning("cancellation of %s not queued: %s", record.job_id, type(exc).__name__)
        if record.status_message_id is not None or record.inline_message_id is not None:
            await self.announcer.cancelled(record, locale)
        return True


def repeat_jobs(
    submit: SubmitPrompt,
    record: JobRecord,
    *,
    user_id: int,
    chat_id: int,
    locale: Locale,
    count: int,
    translate: bool = True,
    seed_source: Callable[[], int] = lambda: random.randint(0, 2**32 - 1),
) -> list[Job]:
    """The same prompt, size and quality with ``count`` new seeds, none the record's nor each
    other's (a new seed: ``count`` 1; variations: several), translated as the user's settings say
    now. Checked again like a new prompt (raises ``InvalidRequest``)."""
    seeds: list[int] = []
    while len(seeds) < count:
        seed = seed_source()
        if seed != record.seed and seed not in seeds:
            seeds.append(seed)
    return [
        submit.prepare(
            user_id=user_id,
            chat_id=chat_id,
            prompt=record.prompt,
            negative_prompt=record.negative_prompt,
            width=record.width,
            height=record.height,
            seed=seed,
            quality=record.quality,
            locale=locale,
        ).model_copy(update={"translate": translate})
        for seed in seeds
    ]
