"""The worker's safety step (a part of ``ProcessJobs``): the prompt filter again, for jobs that
did not come through this project's bot, and the image check after generation, before storage.

What a flagged picture becomes is the operator's ``ImageAction``: ``spoiler`` (stored, and the
result says so: the bot sends it behind Telegram's spoiler), ``refuse`` (not stored; an honest
``image_refused`` result) or ``off`` (no check)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from domain.errors import PromptRefused
from domain.models import ErrorCode, Job, JobStatus, Result
from domain.ports import ImageCheck, Metrics
from domain.safety import CLEAN, ImageAction, ImageVerdict, PromptFilter
from domain.telemetry import NoMetrics

log = logging.getLogger(__name__)

CHECK_FAILED = "CHECK_FAILED"  # the category of a picture the detector could not look at


@dataclass
class SafetyGate:
    prompt_filter: PromptFilter | None = None
    image_check: ImageCheck | None = None
    action: ImageAction = ImageAction.SPOILER
    metrics: Metrics = field(default_factory=NoMetrics)

    @property
    def checks_images(self) -> bool:
        """A detector runs (not the stand-in that passes everything) and the action is not off."""
        check = self.image_check
        return check is not None and check.inspects and self.action is not ImageAction.OFF

    def prompt_refusal(self, job: Job, worker_id: str) -> Result | None:
        """An honest failure for a job whose prompt the filter refuses; None when it passes."""
        if self.prompt_filter is None:
            return None
        try:
            self.prompt_filter.refuse(job.prompt)
        except PromptRefused as exc:
            category = str(exc.params.get("category", ""))
            self.metrics.prompt_refused(category, "worker")
            log.info("job %s refused by the prompt filter (%s)", job.job_id, category, extra={"job_id": job.job_id})
            return Result.failure(job, ErrorCode.PROMPT_REFUSED, worker_id=worker_id)
        return None

    async def verdicts(self, pngs: Sequence[bytes]) -> list[ImageVerdict]:
        """The check's verdict on each picture. A check that fails flags the pictures
        (``CHECK_FAILED``): nothing unchecked goes out as if it had passed."""
        if not self.checks_images or not pngs:
            return [CLEAN for _ in pngs]
        assert self.image_check is not None
        started = time.perf_counter()
        try:
            found = await self.image_check.check(pngs)
        except Exception:
            log.exception("the image check failed for %d picture(s); they count as flagged", len(pngs))
            found = [ImageVerdict(True, (CHECK_FAILED,)) for _ in pngs]
        elapsed = time.perf_counter() - started
        for verdict in found:
            self.metrics.image_checked(verdict.seconds or elapsed / len(pngs), verdict.categories, self.action.value)
        return found

    def refuses(self, verdict: ImageVerdict) -> bool:
        return verdict.flagged and self.action is ImageAction.REFUSE

    def image_refusal(self, job: Job, verdict: ImageVerdict, profile: str, worker_id: str) -> Result:
        log.info(
            "job %s: picture refused by the image check (%s); not stored",
            job.job_id,
            ",".join(verdict.categories),
            extra={"job_id": job.job_id},
        )
        return Result.failure(
            job, ErrorCode.IMAGE_REFUSED, profile=profile, worker_id=worker_id, flags=verdict.categories
        )

    @staticmethod
    def mark(result: Result, verdict: ImageVerdict) -> Result:
        """A stored picture the check flagged goes out behind a spoiler."""
        if not verdict.flagged or result.status != JobStatus.DONE:
            return result
        return result.model_copy(update={"spoiler": True, "flags": verdict.categories})
