"""Credits bought with Telegram Stars (``PAYMENTS=stars``): selling them (the pre-checkout check,
crediting a payment exactly once, catching up on payments whose message was lost, an admin's
refund) and spending them (one credit on one job at admission, given back when that job ends
without a picture).

``SpendCredits`` is what admission and the outcomes call: admission gives ``available`` credits to
the lanes (``domain.lanes.plan_lanes``), then ``spend_on`` each job a credit bought the priority
lane for (full quality).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from domain.credits import CheckoutRefusal, CreditPack, LedgerKind, Refunded, StarPayment, check_checkout
from domain.errors import RefundRefused
from domain.models import Job, Quality
from domain.ports import CreditStore, Metrics, StarPayments
from domain.telemetry import NoMetrics
from domain.users import JobRecord, JobState

log = logging.getLogger(__name__)

# A paid job that ends in one of these states made no picture for its user: its credit comes
# back (an honest error, too many attempts, refused by the image check, never queued, cancelled).
NO_PICTURE = (JobState.FAILED, JobState.CANCELLED)


@dataclass
class SpendCredits:
    """One credit for one job: spent at admission (the job is marked ``paid_credit`` and asks
    for full quality), given back by itself when the job ends without a picture."""

    store: CreditStore
    metrics: Metrics = field(default_factory=NoMetrics)
    clock: Callable[[], float] = time.time

    async def available(self, user_id: int) -> int:
        """Credits the user can spend now (0 while the store cannot tell: the job goes unpaid)."""
        try:
            return max(0, await self.store.credits(user_id))
        except Exception as exc:
            log.warning("credits of a user unknown: %s", type(exc).__name__)
            return 0

    async def spend_on(self, job: Job) -> Job:
        """After the job is recorded (``UserStore.admit``): spend a credit on it if its user has
        one (admission calls it only for jobs ``available`` credits were planned for). The job as
        it goes on: paid (full quality) or as it was. A store that fails here leaves the job
        unpaid: the user is not charged for a picture that is drawn anyway."""
        try:
            paid = await self.store.spend_credit(job.user_id, job.job_id, self.clock())
        except Exception as exc:  # the picture still comes; only the credit stays unspent
            log.warning("no credit spent on %s: %s", job.job_id, type(exc).__name__)
            return job
        if not paid:
            return job
        if not job.paid_credit:
            self.metrics.credits_moved(LedgerKind.SPEND.value, 1)
        return job.model_copy(update={"paid_credit": True, "quality": Quality.QUALITY})

    async def give_back(self, record: JobRecord | None) -> bool:
        """After a job's outcome is recorded: a paid job that made no picture gives its credit
        back (once, whoever calls: the store keeps it to one ``give_back`` per job)."""
        if record is None or not record.paid_credit or record.state not in NO_PICTURE:
            return False
        given = await self.store.give_back_credit(record.job_id, self.clock())
        if given:
            self.metrics.credits_moved(LedgerKind.GIVE_BACK.value, 1)
            log.info("job %s ended without a picture (%s): its credit was given back", record.job_id, record.state)
        return given


@dataclass(frozen=True)
class RefundDone:
    refunded: Refunded
    # The platform said it was refunded before (by an earlier /refund that did not finish, or
    # by Telegram's own support): the credits are taken back all the same.
    refunded_before: bool


@dataclass
class SellCredits:
    """The operator's packs for Stars: the pre-checkout check, the credit (exactly once per
    Telegram charge id), the catch-up from the platform's record, an admin's refund."""

    store: CreditStore
    packs: tuple[CreditPack, ...]
    platform: StarPayments | None = None  # the refunds and the record (the chat adapter's)
    metrics: Metrics = field(default_factory=NoMetrics)
    clock: Callable[[], float] = time.time

    def check(
        self, *, payload: str, currency: str, total: int, banned: bool, allowed: bool = True
    ) -> CheckoutRefusal | None:
        """The pre-checkout query: None to accept it (the pack is sold at that price in Stars,
        the user is not banned and may use the bot). Nothing is awaited: Telegram waits 10 s."""
        return check_checkout(
            self.packs, payload=payload, currency=currency, total=total, banned=banned, allowed=allowed
        )

    async def credit(self, payment: StarPayment) -> bool:
        """A successful payment: its credits, once (False: this charge was credited before)."""
        new = await self.store.credit_purchase(payment)
        if new:
            self.metrics.stars_received(payment.stars)
            self.metrics.credits_moved(LedgerKind.PURCHASE.value, payment.credits)
            log.info("payment %s: %d credits for user %s", payment.charge_id, payment.credits, payment.user_id)
        else:
            log.info("payment %s was credited before: nothing more", payment.charge_id)
        return new

    async def catch_up(self, since: float) -> list[StarPayment]:
        """Credit the payments the platform received since ``since`` that the store does not know
        (their message was lost: the bot died between the payment and the credit, or polling
        confirmed the update before it was handled). The payments credited now."""
        if self.platform is None:
            return []
        credited = []
        for payment in await self.platform.received(since):
            if await self.credit(payment):
                credited.append(payment)
                log.warning("payment %s was credited late, from the platform's record", payment.charge_id)
        return credited

    async def refund(self, charge_id: str) -> RefundDone:
        """An admin's refund: the Stars go back through the platform, then the credits not yet
        spent are taken back. ``RefundRefused`` (nothing changed) for an unknown charge or when
        the platform refuses for another reason than an earlier refund."""
        payment = await self.store.get_payment(charge_id)
        if payment is None or self.platform is None:
            raise RefundRefused(charge_id=charge_id, reason="unknown_charge")
        before = False
        try:
            await self.platform.refund(payment.user_id, charge_id)
        except RefundRefused as exc:
            if exc.params.get("reason") != "already_refunded":
                raise
            before = True
        refunded = await self.store.refund_payment(charge_id, self.clock())
        assert refunded is not None  # the payment is known (payments are never deleted)
        if refunded.first:
            self.metrics.credits_moved(LedgerKind.REFUND.value, refunded.taken_back)
            log.info("payment %s refunded: %d credits taken back", charge_id, refunded.taken_back)
        return RefundDone(refunded, before)
