"""Submit a prompt (bot side): check a request, build its job, hand it to the queue."""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from domain.errors import PromptRefused, QueueUnavailable
from domain.models import Job, Locale, Quality, job_id_for
from domain.ports import JobQueue, Metrics, Tracer
from domain.safety import PromptFilter
from domain.telemetry import NoMetrics, NoTracer
from domain.validation import Limits, check_job

log = logging.getLogger(__name__)


@dataclass
class SubmitPrompt:
    """Validate a user's request and put it on the queue. Nothing invalid is queued."""

    queue: JobQueue
    limits: Limits = field(default_factory=Limits)
    default_width: int = 1024
    default_height: int = 1024
    seed_source: Callable[[], int] = lambda: random.randint(0, 2**32 - 1)
    tracer: Tracer = field(default_factory=NoTracer)
    prompt_filter: PromptFilter | None = None  # None: no prompt filter (SAFETY_PROMPT_FILTER off)
    metrics: Metrics = field(default_factory=NoMetrics)
    # Jobs this process is handing to the queue right now (the outbox leaves them alone).
    in_flight: set[str] = field(default_factory=set)
    # The key of the job ids made from messages (``job_id_for``): the composition root gives
    # one every bot host shares (JOB_ID_SECRET); a random one per process otherwise. Never shown.
    job_id_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def job_id_for(self, chat_id: int, message_id: int) -> str:
        """The id of the job asked for by message ``message_id`` of ``chat_id``: the same for
        the same message, not computable without the secret."""
        return job_id_for(self.job_id_secret, chat_id, message_id)

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
        aspect: float = 0.0,
    ) -> Job:
        """Check everything and build the job; raises ``InvalidRequest`` subclasses. ``job_id``:
        one derived from the message that asked (``self.job_id_for``), so that the same message
        handled twice makes one job. ``aspect``: the ratio asked for (``--ar``), which ``width``
        and ``height`` come near; the worker keeps it at every quality profile."""
        given: dict[str, Any] = {"job_id": job_id} if job_id else {}  # else a fresh one
        job = Job(
            **given,
            user_id=user_id,
            chat_id=chat_id,
            prompt=prompt or "",
            negative_prompt=negative_prompt or "",
            width=width or self.default_width,
            height=height or self.default_height,
            seed=self.seed_source() if seed is None else seed,
            quality=quality,
            locale=locale,
            aspect=aspect,
        )
        # The rules every worker applies again to every job it takes (``check_job``).
        job = check_job(job, self.limits)
        self._filter(job.prompt)  # the negative prompt says what to leave out: never filtered
        return job

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
