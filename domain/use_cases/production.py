"""The worker's batch step (part of ``ProcessJobs``): check, generate, store and report one
batch of compatible jobs, and publish each result before its job is acked."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from domain.models import (
    ErrorCode,
    GeneratedImage,
    GeneratorKind,
    Job,
    Progress,
    Result,
    Stage,
    Timings,
    TranslationStatus,
    Understood,
    image_key,
)
from domain.moderation import SafetyGate
from domain.ports import Delivery, Generator, JobQueue, Metrics, QualityPolicy, Storage, Tracer
from domain.quality import QualityProfile
from domain.telemetry import carrier_of
from domain.translation import UnderstandPrompts

log = logging.getLogger(__name__)


def _error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


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


class Production:
    """The batch step of ``ProcessJobs`` (its fields are declared there)."""

    queue: JobQueue
    generator: Generator
    storage: Storage
    policy: QualityPolicy | None
    worker_id: str
    model_name: str
    generator_kind: GeneratorKind | None
    random_translation: bool
    storage_attempts: int
    storage_backoff_s: float
    publish_backoff_s: float
    progress_interval_s: float
    metrics: Metrics
    tracer: Tracer
    prompts: UnderstandPrompts | None
    safety: SafetyGate | None

    async def _process_group(self, group: list[_Planned]) -> None:
        started = time.time()
        profile = group[0].profile
        self.metrics.jobs_in_flight(len(group))
        try:
            todo: list[_Planned] = []
            for item in group:  # checked when taken (``ProcessJobs._checked``): rules and prompt filter
                self.metrics.profile_selected(profile.name, item.reason)
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
        assert self.policy is not None
        per_image = self.policy.estimate(profile.name) or 0.0  # told to the bots' wait estimates
        for job in jobs:
            await self._progress(job, Stage.STARTED, per_image=per_image)
        last_report = [0.0]

        async def on_step(step: int, total: int) -> None:
            if time.time() - last_report[0] >= self.progress_interval_s or step == total:
                last_report[0] = time.time()
                for job in jobs:
                    await self._progress(job, Stage.GENERATING, step, total, per_image)

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
                    translated = understood[i].translation == TranslationStatus.TRANSLATED
                    result = result.model_copy(
                        update={
                            "understood": understood[i],
                            "random_translation": translated and self.random_translation,
                        }
                    )
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
                item.job,
                ErrorCode.IMAGE_REFUSED,
                profile=result.profile,
                worker_id=self.worker_id,
                flags=verdict.categories,
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

        async def put() -> Result:
            stored = await self.storage.put(key, image.png, "image/png", metadata)
            return self._done(
                item,
                stored.key,
                stored.url,
                started,
                gen_s,
                time.time() - up_started,
                (image.width, image.height),
            )

        def failed(state: RetryCallState) -> None:  # after every failed try, the last one too
            self.metrics.storage_error()
            log.warning(
                "storing job %s failed (attempt %d/%d): %s",
                job.job_id,
                state.attempt_number,
                self.storage_attempts,
                type(_error(state)).__name__,
            )

        if self.storage_attempts >= 1:  # none: the job fails without a try, as it always has
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.storage_attempts),
                wait=wait_exponential(multiplier=self.storage_backoff_s),  # backoff, 2x, 4x, ... no cap
                retry=retry_if_exception_type(Exception),
                after=failed,
                reraise=True,
            )
            with contextlib.suppress(Exception):
                return await retrying(put)
        return Result.failure(job, ErrorCode.STORAGE_UNAVAILABLE, profile=item.profile.name, worker_id=self.worker_id)

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
            generator_kind=self.generator_kind,
        )

    async def _progress(self, job: Job, stage: Stage, step: int = 0, total: int = 0, per_image: float = 0.0) -> None:
        event = Progress.of(job, stage, step, total, worker_id=self.worker_id, seconds_per_image=per_image)
        try:
            await self.queue.publish_event(event)
        except Exception as exc:  # progress is best effort; the result is what matters
            log.debug("progress for %s not published: %s", job.job_id, type(exc).__name__)

    async def _finish(self, delivery: Delivery[Job], result: Result, batch: int) -> None:
        """Publish the result, then ack the job: never the other way round."""
        job = delivery.message
        total = max(0.0, time.time() - job.created_at)
        result = result.model_copy(update={"timings": result.timings.model_copy(update={"total_s": total})})

        def retrying_publish(state: RetryCallState) -> None:
            log.warning("publishing result of %s failed: %s; retrying", job.job_id, type(_error(state)).__name__)

        forever = AsyncRetrying(
            wait=wait_exponential(multiplier=self.publish_backoff_s, max=30.0),  # backoff, 2x, 4x, ... up to 30 s
            retry=retry_if_exception_type(Exception),
            before_sleep=retrying_publish,
            reraise=True,
        )
        await forever(self.queue.publish_event, result)
        await delivery.ack()
        self.metrics.job_finished(result, batch)
        log.info(
            "job %s %s profile=%s batch=%d total=%.2fs",
            job.job_id,
            result.status,
            result.profile,
            batch,
            total,
            extra={"job_id": job.job_id},
        )
