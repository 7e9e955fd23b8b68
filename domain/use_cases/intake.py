"""The worker's intake: what happens to a delivery before it may be planned. Cancellations are
noted, a job delivered too many times fails without another try, and every job is checked
again with the bot's own rules and the prompt filter, whoever put it on the queue."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from domain.errors import InvalidRequest
from domain.models import Cancel, ErrorCode, Job, Result
from domain.ports import Carrier, Delivery
from domain.safety_gate import SafetyGate
from domain.telemetry import carrier_of
from domain.use_cases.report import ReportJobs
from domain.validation import Limits, check_job, shown_prompt

log = logging.getLogger(__name__)

MAX_CANCELLED = 10_000  # cancelled job ids remembered, oldest forgotten first


@dataclass
class TakeJobs:
    """Turns the deliveries taken from the queue into the jobs that may be generated."""

    report: ReportJobs
    safety: SafetyGate
    limits: Limits = field(default_factory=Limits)  # the bot's (MAX_PROMPT_CHARS, MIN_SIDE, MAX_SIDE)
    worker_id: str = "worker"
    max_deliveries: int = 5  # KAFKA_MAX_DELIVERIES; 0: no limit
    _cancelled: OrderedDict[str, None] = field(default_factory=OrderedDict, init=False)

    async def __call__(self, deliveries: Sequence[Delivery[Job | Cancel]]) -> list[Delivery[Job]]:
        """Note the cancellations among ``deliveries``, fail the jobs delivered too many times
        and those that break the rules, and return the other jobs."""
        jobs: list[Delivery[Job]] = []
        for delivery in deliveries:
            if isinstance(delivery.message, Cancel):
                self._cancelled[delivery.message.job_id] = None
                while len(self._cancelled) > MAX_CANCELLED:
                    self._cancelled.popitem(last=False)
                await delivery.ack()
            elif self.max_deliveries and delivery.attempt > self.max_deliveries:
                await self._give_up(delivery)  # type: ignore[arg-type]
            else:
                checked = await self._checked(delivery)  # type: ignore[arg-type]
                if checked is not None:
                    jobs.append(checked)
        return jobs

    async def drop_cancelled(self, held: list[Delivery[Job]]) -> list[Delivery[Job]]:
        """``held`` without the jobs withdrawn before they started: those get an honest
        'cancelled' result instead of a picture."""
        keep = []
        for delivery in held:
            job = delivery.message
            if job.job_id in self._cancelled:
                log.info("job %s cancelled before it started", job.job_id, extra={"job_id": job.job_id})
                cancelled = Result.failure(job, ErrorCode.CANCELLED, worker_id=self.worker_id)
                await self.report.finish(delivery, cancelled, 0)
            else:
                keep.append(delivery)
        return keep

    async def _checked(self, delivery: Delivery[Job]) -> Delivery[Job] | None:
        """The job with the bot's rules applied (its prompts in clean form), or None after it
        failed them honestly: an ``INVALID_JOB`` or ``PROMPT_REFUSED`` result, then the ack."""
        job = delivery.message
        try:
            checked = check_job(job, self.limits)
        except InvalidRequest as exc:
            log.warning(
                "job %s breaks the rules (%s): failing it without generating",
                job.job_id,
                exc.code,
                extra={"job_id": job.job_id},
            )
            failure = Result.failure(job, ErrorCode.INVALID_JOB, worker_id=self.worker_id)
            # The prompt it carried may be megabytes or unprintable: the user sees a clean excerpt.
            failure = failure.model_copy(update={"prompt": shown_prompt(job.prompt, self.limits)})
            await self.report.finish(delivery, failure, 0)
            return None
        refused = self.safety.prompt_refusal(checked, self.worker_id)
        if refused is not None:
            await self.report.finish(delivery, refused, 0)
            return None
        return delivery if checked is job else CheckedDelivery(delivery, checked)

    async def _give_up(self, delivery: Delivery[Job]) -> None:
        """The user is owed an honest answer, not silence, and the group a way past the job."""
        job = delivery.message
        log.warning(
            "job %s delivered %d times, more than max_deliveries=%d: failing it without another try",
            job.job_id,
            delivery.attempt,
            self.max_deliveries,
            extra={"job_id": job.job_id},
        )
        failure = Result.failure(job, ErrorCode.TOO_MANY_ATTEMPTS, worker_id=self.worker_id)
        await self.report.finish(delivery, failure, 0)


@dataclass(frozen=True)
class CheckedDelivery:
    """A delivery whose job the worker cleaned (white space folded, invisible characters
    dropped): the clean job is what is generated and reported; acks go to the original."""

    original: Delivery[Job]
    job: Job

    @property
    def message(self) -> Job:
        return self.job

    @property
    def attempt(self) -> int:
        return self.original.attempt

    @property
    def carrier(self) -> Carrier | None:
        return carrier_of(self.original)

    async def ack(self) -> None:
        await self.original.ack()

    async def release(self) -> None:
        await self.original.release()

    async def hand_back(self) -> None:
        await self.original.hand_back()
