"""The use cases: submit a prompt (bot), process jobs (worker), deliver results (bot)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from domain.errors import DomainError, PromptRefused, QueueUnavailable, RecipientGone, StorageError
from domain.models import (
    Cancel,
    ErrorCode,
    GeneratedImage,
    Job,
    JobStatus,
    Locale,
    Progress,
    Quality,
    Result,
    Stage,
    Timings,
    Understood,
    image_key,
)
from domain.moderation import SafetyGate
from domain.ports import Claim, Delivery, DeliveryLog, Generator, JobQueue, Notifier, QualityPolicy, Storage
from domain.policy import FixedPolicy
from domain.quality import DEFAULT_PROFILES, QualityProfile
from domain.safety import PromptFilter
from domain.scheduling import pick_batch
from domain.telemetry import Metrics, NoMetrics, NoTracer, Tracer, carrier_of
from domain.translation import UnderstandPrompts
from domain.users import JobRecord, JobState, Outcome, UserStore
from domain.validation import Limits, check_seed, check_size, clean_negative_prompt, clean_prompt

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- submit (bot side)


@dataclass
class SubmitPrompt:
    """Validate a user's request and put it on the queue. Nothing invalid is queued."""

    queue: JobQueue
    limits: Limits = Limits()
    default_width: int = 1024
    default_height: int = 1024
    seed_source: Callable[[], int] = lambda: random.randint(0, 2**32 - 1)
    tracer: Tracer = field(default_factory=NoTracer)
    prompt_filter: PromptFilter | None = None  # None: no prompt filter (SAFETY_PROMPT_FILTER off)
    metrics: Metrics = field(default_factory=NoMetrics)
    # Jobs this process is handing to the queue right now (the outbox leaves them alone).
    in_flight: set[str] = field(default_factory=set)

    def prepare(
        self,
        *,
        user_id: int,
        chat_id: int,
        prompt: str,
        negative_prompt: str = "",
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        quality: Quality = Quality.AUTO,
        locale: Locale = Locale.EN,
        job_id: str | None = None,
    ) -> Job:
        """Check everything and build the job; raises ``InvalidRequest`` subclasses. ``job_id``:
        one derived from the message that asked (``job_id_for``), so that the same message
        handled twice makes one job."""
        prompt = clean_prompt(prompt, self.limits)
        negative_prompt = clean_negative_prompt(negative_prompt, self.limits)
        self._filter(prompt)  # the negative prompt says what to leave out: never filtered
        width, height = check_size(
            width or self.default_width, height or self.default_height, self.limits
        )
        seed = check_seed(self.seed_source() if seed is None else seed)
        return Job(
            **({"job_id": job_id} if job_id else {}),
            user_id=user_id,
            chat_id=chat_id,
            prompt=prompt,
            negative_prompt=negative_prompt,
            width=width,
            height=height,
            seed=seed,
            quality=quality,
            locale=locale,
        )

    def _filter(self, prompt: str) -> None:
        if self.prompt_filter is None:
            return
        try:
            self.prompt_filter.refuse(prompt)
        except PromptRefused as exc:
            self.metrics.prompt_refused(str(exc.params.get("category", "")), "bot")
            log.info("prompt refused by the filter (%s)", exc.params.get("category", ""))
            raise

    async def publish(self, job: Job) -> Job:
        """Hand ``job`` to the queue. ``QueueUnavailable`` means the outcome is not known (the
        broker did not answer in time, or refused): the job may still arrive, so a front that
        keeps an outbox publishes it again later (workers deduplicate by job id) instead of
        telling the user it was refused."""
        self.in_flight.add(job.job_id)
        # The job's trace starts here; the queue adapter carries its context to the worker.
        try:
            with self.tracer.span("job.accept", attributes={"job.id": job.job_id, "user.id": job.user_id}):
                try:
                    await self.queue.publish_job(job)
                except Exception as exc:
                    log.warning("could not queue job %s: %s", job.job_id, type(exc).__name__)
                    raise QueueUnavailable(job_id=job.job_id) from exc
        finally:
            self.in_flight.discard(job.job_id)
        log.info("job %s queued user=%s", job.job_id, job.user_id, extra={"job_id": job.job_id})
        return job

    async def __call__(self, **request: object) -> Job:
        return await self.publish(self.prepare(**request))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- process (worker side)


def _prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


@dataclass
class _Planned:
    delivery: Delivery[Job]
    profile: QualityProfile
    reason: str
    size: tuple[int, int]

    @property
    def job(self) -> Job:
        return self.delivery.message


@dataclass
class ProcessJobs:
    """The worker: take jobs from the queue, make their images, store them, publish results.

    Jobs are gathered for up to ``batch_wait_s`` and compatible ones (same profile and size) run
    as one generator call; users take turns within a batch. A job is acked only after its
    result is published. Every step is idempotent by job id: the image key derives from the job
    id, and an image already stored (a redelivered job whose result was lost) is not generated
    again. A job delivered more than ``max_deliveries`` times (each worker that took it died or
    gave it back: a poison prompt) is not tried again but fails with ``TOO_MANY_ATTEMPTS``.
    """

    queue: JobQueue
    generator: Generator
    storage: Storage
    policy: QualityPolicy | None = None
    worker_id: str = "worker"
    model_name: str = "fake"
    max_batch: int = 4
    batch_wait_s: float = 0.05
    lookahead: int = 4  # jobs held in hand, in batches, to choose fair batches from
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

    def __post_init__(self) -> None:
        if self.safety is None:
            self.safety = SafetyGate(metrics=self.metrics)
        if self.policy is None:
            self.policy = FixedPolicy(DEFAULT_PROFILES)
        self.busy = False
        self._held: list[Delivery[Job]] = []
        self._cancelled: OrderedDict[str, None] = OrderedDict()

    @property
    def batch_limit(self) -> int:
        return max(1, min(self.max_batch, self.generator.max_batch))

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set; the batch in hand is finished before returning, and
        jobs held but not started go back to the queue."""
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
            held, self._held = self._held, []
            for delivery in held:
                await delivery.release()
            log.info("worker %s stopped; %d held job(s) returned to the queue", self.worker_id, len(held))

    async def run_once(self) -> int:
        """Take and process one batch; returns how many jobs it had."""
        batch = await self.next_batch()
        if batch:
            await self._run_batch(batch)
        return len(batch)

    async def _run_batch(self, batch: list[_Planned]) -> None:
        self.busy = True
        try:
            await self._process_group(batch)
        finally:
            self.busy = False

    async def _receive(self, timeout: float) -> None:
        room = self.batch_limit * self.lookahead - len(self._held)
        if room > 0:
            self._held += await self._jobs_only(await self.queue.receive_jobs(room, timeout))
            # Oldest first, across partitions too: the order the bots told users their places in.
            self._held.sort(key=lambda d: d.message.created_at)
        await self._drop_cancelled()

    async def _jobs_only(self, deliveries: Sequence[Delivery[Job | Cancel]]) -> list[Delivery[Job]]:
        """Note the cancellations among ``deliveries``, fail the jobs delivered too many times,
        and return the other jobs."""
        jobs: list[Delivery[Job]] = []
        for delivery in deliveries:
            if isinstance(delivery.message, Cancel):
                self._cancelled[delivery.message.job_id] = None
                while len(self._cancelled) > 10_000:
                    self._cancelled.popitem(last=False)
                await delivery.ack()
            elif self.max_deliveries and delivery.attempt > self.max_deliveries:
                await self._give_up(delivery)  # type: ignore[arg-type]
            else:
                jobs.append(delivery)  # type: ignore[arg-type]
        return jobs

    async def _give_up(self, delivery: Delivery[Job]) -> None:
        """The user is owed an honest answer, not silence, and the group a way past the job."""
        job = delivery.message
        log.warning(
            "job %s delivered %d times, more than max_deliveries=%d: failing it without another try",
            job.job_id, delivery.attempt, self.max_deliveries, extra={"job_id": job.job_id},
        )
        failure = Result.failure(job, ErrorCode.TOO_MANY_ATTEMPTS, worker_id=self.worker_id)
        await self._finish(delivery, failure, 0)

    async def _drop_cancelled(self) -> None:
        """Jobs withdrawn before they started: an honest 'cancelled' result instead of a picture."""
        keep = []
        for delivery in self._held:
            job = delivery.message
            if job.job_id in self._cancelled:
                log.info("job %s cancelled before it started", job.job_id, extra={"job_id": job.job_id})
                await self._finish(delivery, Result.failure(job, ErrorCode.CANCELLED, worker_id=self.worker_id), 0)
            else:
                keep.append(delivery)
        self._held = keep

    async def next_batch(self) -> list[_Planned]:
        """The next fair batch of compatible jobs from those in hand (receiving more first)."""
        await self._receive(0.0 if self._held else self.poll_timeout_s)
        if not self._held:
            return []
        planned = await self._plan(self._held)
        head = (planned[0].profile.name, planned[0].size)
        compatible = sum(1 for p in planned if (p.profile.name, p.size) == head)
        if compatible < self.batch_limit and self.batch_wait_s > 0:
            await self._receive(self.batch_wait_s)
            planned = await self._plan(self._held)
        batch, rest = pick_batch(
            planned,
            group=lambda p: (p.profile.name, p.size),
            user=lambda p: p.job.user_id,
            limit=self.batch_limit,
        )
        self._held = [p.delivery for p in rest]
        return batch

    async def _plan(self, deliveries: Sequence[Delivery[Job]]) -> list[_Planned]:
        backlog = await self._backlog()
        self.metrics.consumer_lag(backlog)
        assert self.policy is not None
        out = []
        for delivery in deliveries:
            profile, reason = self.policy.choose(delivery.message.quality, backlog)
            size = profile.fit_size(delivery.message.width, delivery.message.height)
            out.append(_Planned(delivery, profile, reason, size))
        return out

    async def process(self, deliveries: Sequence[Delivery[Job | Cancel]]) -> None:
        """Process the given jobs now, in as many batches as their profiles and sizes need."""
        self._held += await self._jobs_only(deliveries)
        await self._drop_cancelled()
        planned = await self._plan(self._held)
        self._held = []
        while planned:
            batch, planned = pick_batch(
                planned,
                group=lambda p: (p.profile.name, p.size),
                user=lambda p: p.job.user_id,
                limit=self.batch_limit,
            )
            await self._process_group(batch)

    async def _backlog(self) -> int:
        try:
            return await self.queue.backlog()
        except Exception:
            return 0

    async def _process_group(self, group: list[_Planned]) -> None:
        started = time.time()
        profile = group[0].profile
        self.metrics.jobs_in_flight(len(group))
        try:
            todo: list[_Planned] = []
            for item in group:
                self.metrics.profile_selected(profile.name, item.reason)
                refused = self.safety.prompt_refusal(item.job, self.worker_id)  # type: ignore[union-attr]
                if refused is not None:
                    await self._finish(item.delivery, refused, len(group))
                    continue
                key = image_key(item.job.job_id)
                if await self._already_stored(key):
                    # A redelivered job whose image was stored before: only the result is missing.
                    with self.tracer.span("job.reuse_stored", carrier=carrier_of(item.delivery)):
                        link = await self.storage.link(key)
                        result = self._done(item, key, link, started, 0.0, 0.0)
                        result = await self._recheck_stored(item, key, result)
                        await self._finish(item.delivery, result, len(group))
                else:
                    todo.append(item)
            if todo:
                await self._generate_and_store(todo, profile, started, len(group))
        finally:
            self.metrics.jobs_in_flight(-len(group))

    async def _generate_and_store(
        self, todo: list[_Planned], profile: QualityProfile, started: float, batch: int
    ) -> None:
        jobs = [item.job for item in todo]
        for job in jobs:
            await self._progress(job, Stage.STARTED)
        last_report = [0.0]

        async def on_step(step: int, total: int) -> None:
            if time.time() - last_report[0] >= self.progress_interval_s or step == total:
                last_report[0] = time.time()
                for job in jobs:
                    await self._progress(job, Stage.GENERATING, step, total)

        links = [c for c in (carrier_of(i.delivery) for i in todo) if c]
        understood = await self._understand(jobs, links)
        requests = [profile.request(j) for j in jobs]
        if understood is not None:  # the model reads the translated text
            requests = [
                r.model_copy(update={"prompt": u.prompt, "negative_prompt": u.negative_prompt})
                for r, u in zip(requests, understood, strict=True)
            ]
        gen_started = time.time()
        try:
            with self.tracer.span(
                "generate",
                links=links,
                attributes={"batch.size": len(todo), "profile": profile.name, "worker": self.worker_id},
            ):
                images = await self.generator.generate(requests, on_step)
        except Exception:
            log.exception("generation failed for %d job(s)", len(jobs))
            for item in todo:
                failure = Result.failure(
                    item.job, ErrorCode.GENERATION_FAILED, profile=profile.name, worker_id=self.worker_id
                )
                await self._finish(item.delivery, failure, batch)
            return
        gen_s = time.time() - gen_started
        self.metrics.batch_generated(profile.name, len(jobs), gen_s)
        assert self.policy is not None
        self.policy.observe(profile.name, len(jobs), gen_s)
        safety = self.safety
        assert safety is not None
        with self.tracer.span("image_check", links=links, attributes={"batch.size": len(images)}):
            verdicts = await safety.verdicts([image.png for image in images])
        for i, (item, image, verdict) in enumerate(zip(todo, images, verdicts, strict=True)):
            with self.tracer.span(
                "job.store_and_report", carrier=carrier_of(item.delivery), attributes={"job.id": item.job.job_id}
            ):
                if safety.refuses(verdict):  # not stored, not sent
                    refusal = safety.image_refusal(item.job, verdict, profile.name, self.worker_id)
                    await self._finish(item.delivery, refusal, batch)
                    continue
                await self._progress(item.job, Stage.UPLOADING)
                result = safety.mark(await self._store(item, image, started, gen_s), verdict)
                if understood is not None:
                    result = result.model_copy(update={"understood": understood[i]})
                await self._finish(item.delivery, result, batch)

    async def _understand(self, jobs: list[Job], links: list) -> list[Understood] | None:
        """The text the model reads for each job (translated, its cut noted); None: as written."""
        if self.prompts is None:
            return None
        with self.tracer.span("understand", links=links, attributes={"batch.size": len(jobs)}):
            try:
                return await self.prompts(jobs)
            except Exception:  # UnderstandPrompts handles its ports' failures; this is a bug
                log.exception("preparing the prompts failed; they go to the model as written")
                return None

    async def _recheck_stored(self, item: _Planned, key: str, result: Result) -> Result:
        """A picture stored before (a redelivered job) is checked again: its spoiler is not stored."""
        safety = self.safety
        if safety is None or not safety.checks_images:
            return result
        try:
            png = await self.storage.get(key)
        except Exception:
            return result  # the delivery reads it again and says so if it is gone
        verdict = (await safety.verdicts([png]))[0]
        if safety.refuses(verdict):
            return Result.failure(
                item.job, ErrorCode.IMAGE_REFUSED, profile=result.profile,
                worker_id=self.worker_id, flags=verdict.categories,
            )
        return safety.mark(result, verdict)

    async def _already_stored(self, key: str) -> bool:
        try:
            return await self.storage.exists(key)
        except Exception:
            return False

    async def _store(self, item: _Planned, image: GeneratedImage, started: float, gen_s: float) -> Result:
        job = item.job
        key = image_key(job.job_id)
        metadata = {
            "job-id": job.job_id,
            "prompt-sha256": _prompt_hash(job.prompt),
            "seed": str(job.seed),
            "model": self.model_name,
            "profile": item.profile.name,
        }
        up_started = time.time()
        for attempt in range(1, self.storage_attempts + 1):
            try:
                stored = await self.storage.put(key, image.png, "image/png", metadata)
                return self._done(
                    item, stored.key, stored.url, started, gen_s, time.time() - up_started,
                    (image.width, image.height),
                )
            except Exception as exc:
                self.metrics.storage_error()
                log.warning(
                    "storing job %s failed (attempt %d/%d): %s",
                    job.job_id, attempt, self.storage_attempts, type(exc).__name__,
                )
                if attempt < self.storage_attempts:
                    await asyncio.sleep(self.storage_backoff_s * 2 ** (attempt - 1))
        return Result.failure(
            job, ErrorCode.STORAGE_UNAVAILABLE, profile=item.profile.name, worker_id=self.worker_id
        )

    def _done(
        self,
        item: _Planned,
        key: str,
        url: str,
        started: float,
        gen_s: float,
        upload_s: float,
        size: tuple[int, int] | None = None,
    ) -> Result:
        job = item.job
        width, height = size or item.size
        return Result.done(
            job,
            key,
            url,
            width,
            height,
            profile=item.profile.name,
            profile_reason=item.reason,
            timings=Timings(
                queue_wait_s=max(0.0, started - job.created_at),
                generation_s=gen_s,
                upload_s=upload_s,
            ),
            worker_id=self.worker_id,
        )

    async def _progress(self, job: Job, stage: Stage, step: int = 0, total: int = 0) -> None:
        event = Progress.of(job, stage, step, total, worker_id=self.worker_id)
        try:
            await self.queue.publish_event(event)
        except Exception as exc:  # progress is best effort; the result is what matters
            log.debug("progress for %s not published: %s", job.job_id, type(exc).__name__)

    async def _finish(self, delivery: Delivery[Job], result: Result, batch: int) -> None:
        """Publish the result, then ack the job: never the other way round."""
        job = delivery.message
        total = max(0.0, time.time() - job.created_at)
        result = result.model_copy(
            update={"timings": result.timings.model_copy(update={"total_s": total})}
        )
        delay = self.publish_backoff_s
        while True:
            try:
                await self.queue.publish_event(result)
                break
            except Exception as exc:
                log.warning(
                    "publishing result of %s failed: %s; retrying", job.job_id, type(exc).__name__
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        await delivery.ack()
        self.metrics.job_finished(result, batch)
        log.info(
            "job %s %s profile=%s batch=%d total=%.2fs",
            job.job_id, result.status, result.profile, batch, total,
            extra={"job_id": job.job_id},
        )


# --------------------------------------------------------------------------- deliver (bot side)


@dataclass
class DeliverResults:
    """The bot's consumer of events: progress goes to the live status, results to the user,
    exactly once per job id, and none lost when a bot dies mid-delivery.

    A result is claimed in the delivery log, sent, confirmed, then its status is settled and
    only then acked. A claim held by a delivery in progress elsewhere is left for later (the
    result is released, not skipped); a result already delivered is skipped, but its status is
    settled again (the bot that sent it may have died before it could). A storage outage is
    waited out for ``storage_give_up_s``; then the user is told honestly."""

    queue: JobQueue
    notifier: Notifier
    delivery_log: DeliveryLog
    batch: int = 64
    poll_timeout_s: float = 1.0
    retry_delay_s: float = 2.0
    renew_every_s: float = 5.0
    storage_give_up_s: float = 300.0
    metrics: Metrics = field(default_factory=NoMetrics)
    tracer: Tracer = field(default_factory=NoTracer)
    concurrency: int = 256
    slow_after_s: float = 1.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._storage_failing_since: dict[str, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        # Each event is handled on its own task, up to ``concurrency`` at once. A batch is
        # waited for, but no longer than ``slow_after_s``: a delivery stuck in its chat's flood
        # control (or pacing) goes on in the background and holds back nobody else (nor keeps
        # their finished jobs counted as in progress), while quick deliveries keep the batches
        # one after the other (a bot killed mid-batch then owes the least: results taken but
        # not confirmed are the ones sent again).
        room = asyncio.Semaphore(self.concurrency)
        handling: set[asyncio.Task[None]] = set()

        async def handle(delivery: Delivery[object]) -> None:
            try:
                await self.handle(delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the delivery log's database is away: it comes again, later
                log.warning("event not handled (%s); delivered again", type(exc).__name__)
                await asyncio.sleep(self.retry_delay_s)
                with contextlib.suppress(Exception):
                    await delivery.release()
            finally:
                room.release()

        try:
            while not stop.is_set():
                try:
                    deliveries = await self.queue.receive_events(self.batch, self.poll_timeout_s)
                except Exception:
                    log.exception("receiving events failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
                batch = []
                for delivery in deliveries:
                    await room.acquire()
                    task = asyncio.create_task(handle(delivery))
                    handling.add(task)
                    task.add_done_callback(handling.discard)
                    batch.append(task)
                if batch:
                    await asyncio.wait(batch, timeout=self.slow_after_s)
            if handling:
                await asyncio.gather(*handling, return_exceptions=True)
        finally:
            for task in handling:  # cut short (cancelled): the queue owes what is not acked
                task.cancel()
            if handling:
                await asyncio.gather(*handling, return_exceptions=True)

    async def handle(self, delivery: Delivery[object]) -> None:
        event = delivery.message
        if isinstance(event, Progress):
            try:
                await self.notifier.progress(event)
            except Exception as exc:  # a lost progress edit is harmless
                log.debug("progress of %s not shown: %s", event.job_id, type(exc).__name__)
            await delivery.ack()
            return
        assert isinstance(event, Result)
        claim = await self.delivery_log.claim(event.job_id)
        if claim is Claim.DELIVERED:
            log.info("result %s already delivered; skipped", event.job_id)
            await self._settle(event)
            await delivery.ack()
            return
        if claim is Claim.HELD:
            log.info("result %s is being delivered by another process; later", event.job_id)
            await asyncio.sleep(self.retry_delay_s)
            await delivery.release()
            return
        with self.tracer.span(
            "job.deliver", carrier=carrier_of(delivery), attributes={"job.id": event.job_id}
        ):
            final = await self._deliver_claimed(event)
        if not final:
            await asyncio.sleep(self.retry_delay_s)  # do not spin on a front that is down
            await delivery.release()
            return
        await self._settle(event)
        if event.accepted_at:
            self.metrics.result_delivered(event, max(0.0, time.time() - event.accepted_at))
        await delivery.ack()

    async def _deliver_claimed(self, result: Result) -> bool:
        """Send a claimed result. True: it is settled for good (sent, or can never be);
        False: the claim was given back, to be tried again.

        The claim is confirmed the moment the chat has taken the message (the notifier awaits
        ``sent`` right after Telegram's answer), not when the whole delivery is over: once sent,
        whatever fails afterwards (a follow-up, a bookkeeping write) never sends it again."""
        confirmed = False

        async def sent() -> None:
            nonlocal confirmed
            if confirmed:
                return
            confirmed = True  # (also while it is written: a cancelled delivery does not forget it)
            try:
                await asyncio.shield(self.delivery_log.confirm(result.job_id))
            except Exception as exc:  # tried once more when the delivery is over
                confirmed = False
                log.warning("confirming %s failed: %s", result.job_id, type(exc).__name__)

        renewer = asyncio.create_task(self._renew(result.job_id), name=f"renew-{result.job_id}")
        try:
            await self.notifier.deliver(result, sent)
        except asyncio.CancelledError:  # stopping before it was sent: the queue still owes it
            if not confirmed:
                await asyncio.shield(self.delivery_log.forget(result.job_id))
            raise
        except RecipientGone:
            self.metrics.delivery_error("recipient_gone")
            log.info("user %s cannot be reached; result %s dropped", result.user_id, result.job_id)
        except StorageError as exc:
            self.metrics.delivery_error(exc.code)
            first = self._storage_failing_since.setdefault(result.job_id, self.clock())
            if self.clock() - first < self.storage_give_up_s:
                log.warning("result %s: the image cannot be read (%s); will retry", result.job_id, exc.code)
                await self.delivery_log.forget(result.job_id)
                return False
            log.warning("result %s: the image stayed unreadable; telling the user", result.job_id)
            return await self._deliver_claimed_failure(result)
        except DomainError as exc:
            self.metrics.delivery_error(exc.code)
            log.warning("result %s not delivered: %s", result.job_id, exc.code)
        except Exception as exc:
            self.metrics.delivery_error(type(exc).__name__)
            if not confirmed:
                log.warning("result %s not delivered (%s); will retry", result.job_id, type(exc).__name__)
                await self.delivery_log.forget(result.job_id)
                return False
            log.warning("result %s sent, then %s; not sent again", result.job_id, type(exc).__name__)
        finally:
            renewer.cancel()
        self._storage_failing_since.pop(result.job_id, None)
        if not confirmed:
            await self.delivery_log.confirm(result.job_id)
        return True

    async def _deliver_claimed_failure(self, result: Result) -> bool:
        self._storage_failing_since.pop(result.job_id, None)
        failure = result.model_copy(
            update={"status": JobStatus.FAILED, "error_code": ErrorCode.STORAGE_UNAVAILABLE, "image_key": None}
        )
        return await self._deliver_claimed(failure)

    async def _renew(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                await self.delivery_log.renew(job_id)
            except Exception as exc:
                log.warning("renewing the claim of %s failed: %s", job_id, type(exc).__name__)

    async def _settle(self, result: Result) -> None:
        try:
            await self.notifier.settle(result)
        except Exception as exc:  # the picture is out; a status left over is a blemish
            log.info("status of %s not settled: %s", result.job_id, type(exc).__name__)


# --------------------------------------------------------------------------- outbox (bot side)


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

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("the outbox pass failed; retrying")
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """One pass; returns how many jobs it published."""
        now = self.clock()
        pending = [
            r for r in await self.store.unpublished(now - self.min_age_s)
            if r.job_id not in self.submit.in_flight
        ]
        if not pending:
            return 0
        expired = [r for r in pending if now - r.created_at > self.expiry_s]
        for record in expired:
            log.warning("job %s never reached the queue; it fails", record.job_id)
            await self.store.finish(
                record.job_id, Outcome(JobState.FAILED, now, error_code=ErrorCode.QUEUE_UNAVAILABLE.value)
            )
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
