"""The worker's batch step: check, generate, store and report one batch of compatible jobs, and
publish each result before its job is acked. ``ProcessJobs`` composes it with what it needs:
``StoreImages`` (store.py) keeps the pictures, ``ReportJobs`` (report.py) tells progress and
results."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from domain.models import (
    ErrorCode,
    GeneratedImage,
    Job,
    Result,
    Stage,
    TranslationStatus,
    Understood,
    image_key,
)
from domain.ports import Carrier, Generator, Metrics, QualityPolicy, Storage, Tracer
from domain.quality import QualityProfile
from domain.safety import ImageVerdict
from domain.safety_gate import SafetyGate
from domain.telemetry import carrier_of
from domain.translation import UnderstandPrompts
from domain.use_cases.planned import PlannedJob
from domain.use_cases.report import ReportJobs
from domain.use_cases.store import StoreImages

log = logging.getLogger(__name__)


@dataclass
class _Made:
    """A batch's pictures, how long the generator took, and what the model read of each prompt
    (None: the prompts as written)."""

    images: list[GeneratedImage]
    gen_s: float
    understood: list[Understood] | None


@dataclass
class ProduceBatch:
    """One batch of compatible jobs (same profile and size) from taken to reported. A job whose
    picture is stored already (a redelivered job whose result was lost) is not generated again."""

    generator: Generator
    storage: Storage
    policy: QualityPolicy
    safety: SafetyGate  # the image check (the prompt filter ran when the job was taken)
    store: StoreImages
    report: ReportJobs
    metrics: Metrics
    tracer: Tracer
    prompts: UnderstandPrompts | None = None  # translation and the token-limit check
    worker_id: str = "worker"
    random_translation: bool = False  # the translator has random test weights (GENERATOR=tiny)
    progress_interval_s: float = 1.0

    async def __call__(self, group: list[PlannedJob]) -> None:
        started = time.time()
        profile = group[0].profile
        self.metrics.jobs_in_flight(len(group))
        try:
            todo: list[PlannedJob] = []
            for item in group:  # checked when taken (``TakeJobs``): rules and prompt filter
                self.metrics.profile_selected(profile.name, item.reason)
                self.metrics.lane_wait(item.job.lane.value, max(0.0, started - item.job.created_at))
                if not await self._reuse_stored(item, started, len(group)):
                    todo.append(item)
            if todo:
                links = [c for c in (carrier_of(i.delivery) for i in todo) if c]
                made = await self._generate(todo, profile, links, len(group))
                if made is not None:
                    await self._check_and_store(todo, made, profile, links, started, len(group))
        finally:
            self.metrics.jobs_in_flight(-len(group))

    async def _reuse_stored(self, item: PlannedJob, started: float, batch: int) -> bool:
        """A redelivered job whose image was stored before: only the result is missing."""
        key = image_key(item.job.job_id)
        if not await self.store.already_stored(key):
            return False
        with self.tracer.span("job.reuse_stored", carrier=carrier_of(item.delivery)):
            link = await self.storage.link(key)
            result = self.store.done(item, key, link, started, 0.0, 0.0)
            result = await self._recheck_stored(item, key, result)
            await self.report.finish(item.delivery, result, batch)
        return True

    async def _generate(
        self, todo: list[PlannedJob], profile: QualityProfile, links: list[Carrier], batch: int
    ) -> _Made | None:
        """The batch's pictures; None after a failed generation was reported for every job."""
        jobs = [item.job for item in todo]
        per_image = self.policy.estimate(profile.name) or 0.0  # told to the bots' wait estimates
        for job in jobs:
            await self.report.progress(job, Stage.STARTED, per_image=per_image)
        last_report = [0.0]

        async def on_step(step: int, total: int) -> None:
            if time.time() - last_report[0] >= self.progress_interval_s or step == total:
                last_report[0] = time.time()
                for job in jobs:
                    await self.report.progress(job, Stage.GENERATING, step, total, per_image)

        understood = await self._understand(jobs, links)
        requests = [profile.request(j) for j in jobs]
        if understood is not None:  # the model reads the translated text
            requests = [
                r.model_copy(update={"prompt": u.prompt, "negative_prompt": u.negative_prompt})
                for r, u in zip(requests, understood, strict=True)
            ]
        gen_started = time.time()
        try:
            attributes = {"batch.size": len(todo), "profile": profile.name, "worker": self.worker_id}
            with self.tracer.span("generate", links=links, attributes=attributes):
                images = await self.generator.generate(requests, on_step)
        except Exception:
            log.exception("generation failed for %d job(s)", len(jobs))
            for item in todo:
                failure = Result.failure(
                    item.job, ErrorCode.GENERATION_FAILED, profile=profile.name, worker_id=self.worker_id
                )
                await self.report.finish(item.delivery, failure, batch)
            return None
        gen_s = time.time() - gen_started
        self.metrics.batch_generated(profile.name, len(jobs), gen_s)
        self.policy.observe(profile.name, len(jobs), gen_s)
        return _Made(images, gen_s, understood)

    async def _check_and_store(
        self,
        todo: list[PlannedJob],
        made: _Made,
        profile: QualityProfile,
        links: list[Carrier],
        started: float,
        batch: int,
    ) -> None:
        """The image check over the batch, then each picture stored and reported (a refused one
        is neither stored nor sent)."""
        with self.tracer.span("image_check", links=links, attributes={"batch.size": len(made.images)}):
            verdicts = await self.safety.verdicts([image.png for image in made.images])
        for i, (item, image, verdict) in enumerate(zip(todo, made.images, verdicts, strict=True)):
            understood = made.understood[i] if made.understood is not None else None
            with self.tracer.span(
                "job.store_and_report", carrier=carrier_of(item.delivery), attributes={"job.id": item.job.job_id}
            ):
                if self.safety.refuses(verdict):  # not stored, not sent
                    refusal = self.safety.image_refusal(item.job, verdict, profile.name, self.worker_id)
                    await self.report.finish(item.delivery, refusal, batch)
                    continue
                await self.report.progress(item.job, Stage.UPLOADING)
                result = await self._stored(item, image, verdict, understood, started, made.gen_s)
                await self.report.finish(item.delivery, result, batch)

    async def _stored(
        self,
        item: PlannedJob,
        image: GeneratedImage,
        verdict: ImageVerdict,
        understood: Understood | None,
        started: float,
        gen_s: float,
    ) -> Result:
        result = self.safety.mark(await self.store.store(item, image, started, gen_s), verdict)
        if understood is None:
            return result
        translated = understood.translation == TranslationStatus.TRANSLATED
        return result.model_copy(
            update={"understood": understood, "random_translation": translated and self.random_translation}
        )

    async def _understand(self, jobs: list[Job], links: list[Carrier]) -> list[Understood] | None:
        """The text the model reads for each job (translated, its cut noted); None: as written."""
        if self.prompts is None:
            return None
        with self.tracer.span("understand", links=links, attributes={"batch.size": len(jobs)}):
            try:
                return await self.prompts(jobs)
            except Exception:  # UnderstandPrompts handles its ports' failures; this is a bug
                log.exception("preparing the prompts failed; they go to the model as written")
                return None

    async def _recheck_stored(self, item: PlannedJob, key: str, result: Result) -> Result:
        """A picture stored before (a redelivered job) is checked again: its spoiler is not stored."""
        safety = self.safety
        if not safety.checks_images:
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
