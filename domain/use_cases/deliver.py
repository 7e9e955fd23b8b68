"""Deliver results (bot side): progress to the live status, each result to its user exactly
once, none lost when a bot dies mid-delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from domain.errors import DomainError, RecipientGone, StorageError
from domain.models import ErrorCode, JobStatus, Progress, Result
from domain.ports import Claim, Delivery, DeliveryLog, JobQueue, Metrics, OutcomeRecorder, Tracer
from domain.telemetry import NoMetrics, NoTracer, carrier_of
from domain.use_cases.vet import VetEvents

log = logging.getLogger(__name__)


@dataclass
class DeliverResults:
    """The bot's consumer of events: progress goes to the live status, results to the user,
    exactly once per job id, and none lost when a bot dies mid-delivery.

    A result is claimed in the delivery log, sent, confirmed, then its status is settled and
    only then acked. A claim held by a delivery in progress elsewhere is left for later (the
    result is released, not skipped); a result already delivered is skipped, but its status is
    settled again (the bot that sent it may have died before it could). A storage outage is
    waited out for ``storage_give_up_s``; then the user is told honestly.

    ``vet`` checks every event against its job's record before anything else (even before the
    claim) and hands on the event rebuilt from that record; a forged event is acked and goes no
    further. The composition root always sets it; None trusts every event (the tests and
    benchmarks of the queue alone, which have no user store)."""

    queue: JobQueue
    outcomes: OutcomeRecorder
    delivery_log: DeliveryLog
    batch: int = 64
    poll_timeout_s: float = 1.0
    retry_delay_s: float = 2.0
    renew_every_s: float = 5.0
    storage_give_up_s: float = 300.0
    metrics: Metrics = field(default_factory=NoMetrics)
    tracer: Tracer = field(default_factory=NoTracer)
    # Deliveries under way at once: about two seconds of the whole send budget. More only
    # waits in the sender while holding claims, and a bot that dies holding many leaves them
    # all to wait out their lease, behind everything its successor took in meanwhile.
    concurrency: int = 64
    slow_after_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    vet: VetEvents | None = None

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
        if self.vet is not None:
            assert isinstance(event, Progress | Result)  # what the queue hands out
            vetted = await self.vet(event)
            if vetted is None:  # forged: counted and logged; acked, never retried
                await delivery.ack()
                return
            event = vetted
        if isinstance(event, Progress):
            try:
                await self.outcomes.progress(event)
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
        with self.tracer.span("job.deliver", carrier=carrier_of(delivery), attributes={"job.id": event.job_id}):
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

        The claim is confirmed the moment the chat has taken the message (the outcome recorder awaits
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
            await self.outcomes.deliver(result, sent)
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
            await self.outcomes.settle(result)
        except Exception as exc:  # the picture is out; a status left over is a blemish
            log.info("status of %s not settled: %s", result.job_id, type(exc).__name__)
