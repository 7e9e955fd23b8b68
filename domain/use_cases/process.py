"""Process jobs (worker side): take jobs from the queue in fair batches and run each batch.
What it is composed of, each in its own file: ``TakeJobs`` (intake.py) notes cancellations and
fails the poison and rule-breaking jobs, ``ProduceBatch`` (production.py) generates, checks,
stores and reports a batch, ``StoreImages`` (store.py) and ``ReportJobs`` (report.py) serve it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from domain.lanes import LaneShare, lane_backlog
from domain.models import Cancel, GeneratorKind, Job, Lane
from domain.policy import FixedPolicy
from domain.ports import Delivery, Generator, JobQueue, Metrics, QualityPolicy, Storage, Tracer
from domain.quality import DEFAULT_PROFILES
from domain.safety_gate import SafetyGate
from domain.scheduling import pick_batch, pick_lane_batch
from domain.telemetry import NoMetrics, NoTracer
from domain.translation import UnderstandPrompts
from domain.use_cases.intake import TakeJobs
from domain.use_cases.planned import PlannedJob
from domain.use_cases.production import ProduceBatch
from domain.use_cases.report import ReportJobs
from domain.use_cases.store import StoreImages
from domain.validation import Limits

log = logging.getLogger(__name__)


@dataclass
class ProcessJobs:
    """The worker: take jobs from the queue, make their images, store them, publish results.

    Jobs are gathered for up to ``batch_wait_s`` and compatible ones (same profile and size) run
    as one generator call; users take turns within a batch. Batches are made from the priority
    lane's jobs first, with at least one slot in ``relaxed_every`` for the relaxed lane's while
    it has jobs in hand (``domain.lanes.LaneShare``); a batch with room takes compatible jobs of
    the other lane too. A job is acked only after its
    result is published. Every step is idempotent by job id: the image key derives from the job
    id, and an image already stored (a redelivered job whose result was lost) is not generated
    again. A job delivered more than ``max_deliveries`` times (each worker that took it died or
    gave it back: a poison prompt) is not tried again but fails with ``TOO_MANY_ATTEMPTS``.
    A job taken is checked first with the bot's own rules (``check_job`` with ``limits``, then
    the prompt filter): one that breaks them fails at once with ``INVALID_JOB`` or
    ``PROMPT_REFUSED`` and is never generated, whoever put it on the queue.
    """

    queue: JobQueue
    generator: Generator
    storage: Storage
    policy: QualityPolicy | None = None
    worker_id: str = "worker"
    model_name: str = "fake"
    # What makes the pictures (real, tiny, placeholder), told to the bot with every result.
    generator_kind: GeneratorKind | None = None
    random_translation: bool = False  # the translator has random test weights (GENERATOR=tiny)
    max_batch: int = 4
    batch_wait_s: float = 0.05
    lookahead: int = 4  # jobs held in hand, in batches, to choose fair batches from
    relaxed_every: int = 4  # LANES_RELAXED_EVERY: at least one batch in this many is relaxed-led
    poll_timeout_s: float = 1.0
    storage_attempts: int = 3
    storage_backoff_s: float = 0.5
    publish_backoff_s: float = 0.5
    progress_interval_s: float = 1.0
    max_deliveries: int = 5  # KAFKA_MAX_DELIVERIES; 0: no limit
    metrics: Metrics = field(default_factory=NoMetrics)
    tracer: Tracer = field(default_factory=NoTracer)
    # Translation and the token-limit check before generation (None: prompts go as written).
    prompts: UnderstandPrompts | None = None
    safety: SafetyGate | None = None  # the prompt filter again and the image check
    limits: Limits = field(default_factory=Limits)  # the bot's (MAX_PROMPT_CHARS, MIN_SIDE, MAX_SIDE)
    # Composed from the fields above (``_compose``).
    report: ReportJobs = field(init=False)
    take: TakeJobs = field(init=False)
    produce: ProduceBatch = field(init=False)

    def __post_init__(self) -> None:
        self.busy = False
        self._held: list[Delivery[Job]] = []
        self._in_batch: list[Delivery[Job]] = []  # the batch being made now
        self._share = LaneShare(self.relaxed_every)
        self._compose()

    def _compose(self) -> None:
        safety = self.safety = SafetyGate(metrics=self.metrics) if self.safety is None else self.safety
        policy = self.policy = FixedPolicy(DEFAULT_PROFILES) if self.policy is None else self.policy
        self.report = ReportJobs(self.queue, self.worker_id, self.publish_backoff_s, self.metrics)
        self.take = TakeJobs(self.report, safety, self.limits, self.worker_id, self.max_deliveries)
        store = StoreImages(
            self.storage,
            worker_id=self.worker_id,
            model_name=self.model_name,
            generator_kind=self.generator_kind,
            attempts=self.storage_attempts,
            backoff_s=self.storage_backoff_s,
            metrics=self.metrics,
        )
        self.produce = ProduceBatch(
            generator=self.generator,
            storage=self.storage,
            policy=policy,
            safety=safety,
            store=store,
            report=self.report,
            metrics=self.metrics,
            tracer=self.tracer,
            prompts=self.prompts,
            worker_id=self.worker_id,
            random_translation=self.random_translation,
            progress_interval_s=self.progress_interval_s,
        )

    @property
    def batch_limit(self) -> int:
        return max(1, min(self.max_batch, self.generator.max_batch))

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set; the batch in hand is finished before returning, and
        jobs held but not started go back to the queue. A stop is planned (the app cancels this
        task when the batch outlasts the grace period; a crash never gets here), so every job
        given back, held or cut mid-batch, is handed back uncounted: restarts and upgrades never
        use up a job's ``max_deliveries``."""
        log.info("worker %s started", self.worker_id)
        try:
            while not stop.is_set():
                try:
                    batch = await self.next_batch()
                except Exception:
                    log.exception("receiving jobs failed; retrying")
                    await asyncio.sleep(self.publish_backoff_s)
                    continue
                if batch:
                    await self._run_batch(batch)
        finally:
            cut, self._in_batch = self._in_batch, []  # acked ones are left alone by hand_back
            held, self._held = self._held, []
            for delivery in (*cut, *held):
                await delivery.hand_back()
            log.info(
                "worker %s stopped; %d held and %d cut job(s) handed back to the queue",
                self.worker_id,
                len(held),
                len(cut),
            )

    async def run_once(self) -> int:
        """Take and process one batch; returns how many jobs it had."""
        batch = await self.next_batch()
        if batch:
            await self._run_batch(batch)
        return len(batch)

    async def _run_batch(self, batch: list[PlannedJob]) -> None:
        self.busy = True
        self._in_batch = [p.delivery for p in batch]
        try:
            await self.produce(batch)
        except asyncio.CancelledError:
            raise  # a stop cut the batch short: ``run`` hands it back, uncounted
        except BaseException:
            self._in_batch = []  # an unexpected failure is no planned stop: it counts
            raise
        else:
            self._in_batch = []
        finally:
            self.busy = False

    async def _receive(self, timeout: float) -> None:
        room = self.batch_limit * self.lookahead - len(self._held)
        if room > 0:
            self._held += await self.take(await self.queue.receive_jobs(room, timeout))
            # Oldest first, across partitions too: the order the bots told users their places in.
            self._held.sort(key=lambda d: d.message.created_at)
        self._held = await self.take.drop_cancelled(self._held)

    async def next_batch(self) -> list[PlannedJob]:
        """The next fair batch of compatible jobs from those in hand (receiving more first)."""
        await self._receive(0.0 if self._held else self.poll_timeout_s)
        if not self._held:
            # Nothing in hand: the gauge says what waits now (0 once drained), not what waited
            # when this worker last planned a batch.
            await self._backlogs()
            return []
        planned = await self._plan(self._held)
        head = (planned[0].profile.name, planned[0].size)
        compatible = sum(1 for p in planned if (p.profile.name, p.size) == head)
        if compatible < self.batch_limit and self.batch_wait_s > 0:
            await self._receive(self.batch_wait_s)
            planned = await self._plan(self._held)
        batch, rest = _lane_batch(planned, self._share, self.batch_limit)
        self._held = [p.delivery for p in rest]
        return batch

    async def _plan(self, deliveries: Sequence[Delivery[Job]]) -> list[PlannedJob]:
        backlogs = await self._backlogs()
        assert self.policy is not None
        out = []
        for delivery in deliveries:
            lane = delivery.message.lane
            job = delivery.message
            profile, reason = self.policy.choose(job.quality, lane_backlog(backlogs, lane), lane, paid=job.paid_credit)
            size = profile.fit_size(job.width, job.height, job.aspect)
            out.append(PlannedJob(delivery, profile, reason, size))
        return out

    async def process(self, deliveries: Sequence[Delivery[Job | Cancel]]) -> None:
        """Process the given jobs now, in as many batches as their profiles and sizes need."""
        self._held += await self.take(deliveries)
        self._held = await self.take.drop_cancelled(self._held)
        planned = await self._plan(self._held)
        self._held = []
        while planned:
            batch, planned = _fair_batch(planned, self.batch_limit)
            await self.produce(batch)

    async def _backlogs(self) -> dict[Lane, int]:
        """The group's backlog per lane; their sum exported as measured (the same figure every
        process reports). Unknown (the broker away): plan as if nothing waited, and leave the
        gauge alone rather than report 0."""
        try:
            backlogs = await self.queue.backlogs()
        except Exception:
            return {}
        self.metrics.consumer_lag(sum(backlogs.values()))
        return backlogs


def _lane_batch(planned: list[PlannedJob], share: LaneShare, limit: int) -> tuple[list[PlannedJob], list[PlannedJob]]:
    """A fair batch led by the priority lane with the relaxed lane's slots kept (``LaneShare``), and the rest."""
    lanes = {p.job.lane for p in planned}
    first, reserve = share.plan(limit, Lane.PRIORITY in lanes, Lane.RELAXED in lanes)
    batch, rest = pick_lane_batch(
        planned,
        first=first,
        reserve=reserve,
        lane=lambda p: p.job.lane,
        group=lambda p: (p.profile.name, p.size),
        user=lambda p: p.job.user_id,
        limit=limit,
    )
    share.took(sum(1 for p in batch if p.job.lane == Lane.RELAXED))
    return batch, rest


def _fair_batch(planned: list[PlannedJob], limit: int) -> tuple[list[PlannedJob], list[PlannedJob]]:
    """Up to ``limit`` compatible jobs (same profile and size), users taking turns; and the rest."""
    return pick_batch(planned, group=lambda p: (p.profile.name, p.size), user=lambda p: p.job.user_id, limit=limit)
