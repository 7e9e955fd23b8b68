"""What the worker tells about a job: its progress (best effort) and its result, published
before the job is acked, never the other way round."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from domain.models import Job, Progress, Result, Stage
from domain.ports import Delivery, JobQueue, Metrics
from domain.retry import Backoff
from domain.telemetry import NoMetrics

log = logging.getLogger(__name__)


@dataclass
class ReportJobs:
    """Publishes a worker's progress events and results on ``queue``."""

    queue: JobQueue
    worker_id: str = "worker"
    publish_backoff_s: float = 0.5
    metrics: Metrics = field(default_factory=NoMetrics)

    async def progress(self, job: Job, stage: Stage, step: int = 0, total: int = 0, per_image: float = 0.0) -> None:
        event = Progress.of(job, stage, step, total, worker_id=self.worker_id, seconds_per_image=per_image)
        try:
            await self.queue.publish_event(event)
        except Exception as exc:  # progress is best effort; the result is what matters
            log.debug("progress for %s not published: %s", job.job_id, type(exc).__name__)

    async def finish(self, delivery: Delivery[Job], result: Result, batch: int) -> None:
        """Publish the result (retrying until it is published), then ack the job."""
        job = delivery.message
        total = max(0.0, time.time() - job.created_at)
        result = result.model_copy(update={"timings": result.timings.model_copy(update={"total_s": total})})

        def retrying(attempt: int, exc: Exception, wait: float | None) -> None:
            log.warning("publishing result of %s failed: %s; retrying", job.job_id, type(exc).__name__)

        # backoff, 2x, 4x, ... up to 30 s, for as long as it takes
        forever = Backoff(first_s=self.publish_backoff_s, max_s=30.0)
        await forever.call(lambda: self.queue.publish_event(result), on_failure=retrying)
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
