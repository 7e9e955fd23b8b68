"""The worker's storing of a picture: under the key its job id gives, retried with backoff, and
the result that says where it is (or that the storage was unavailable)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field

from domain.models import ErrorCode, GeneratedImage, GeneratorKind, Result, Timings, image_key
from domain.ports import Metrics, Storage
from domain.retry import Backoff
from domain.telemetry import NoMetrics
from domain.use_cases.planned import PlannedJob

log = logging.getLogger(__name__)


def _prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


@dataclass
class StoreImages:
    """Stores pictures and writes the results that point at them."""

    storage: Storage
    worker_id: str = "worker"
    model_name: str = "fake"
    # What makes the pictures (real, tiny, placeholder), told to the bot with every result.
    generator_kind: GeneratorKind | None = None
    attempts: int = 3
    backoff_s: float = 0.5
    metrics: Metrics = field(default_factory=NoMetrics)

    async def already_stored(self, key: str) -> bool:
        try:
            return await self.storage.exists(key)
        except Exception:
            return False

    async def store(self, item: PlannedJob, image: GeneratedImage, started: float, gen_s: float) -> Result:
        """The picture stored and its result; ``STORAGE_UNAVAILABLE`` once the tries ran out."""
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
            upload_s = time.time() - up_started
            return self.done(item, stored.key, stored.url, started, gen_s, upload_s, (image.width, image.height))

        def failed(attempt: int, exc: Exception, wait: float | None) -> None:  # after every failed try
            self.metrics.storage_error()
            log.warning(
                "storing job %s failed (attempt %d/%d): %s", job.job_id, attempt, self.attempts, type(exc).__name__
            )

        if self.attempts >= 1:  # none: the job fails without a try, as it always has
            retrying = Backoff(first_s=self.backoff_s, attempts=self.attempts)  # backoff, 2x, 4x, ... no cap
            with contextlib.suppress(Exception):
                return await retrying.call(put, on_failure=failed)
        return Result.failure(job, ErrorCode.STORAGE_UNAVAILABLE, profile=item.profile.name, worker_id=self.worker_id)

    def done(
        self,
        item: PlannedJob,
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
