"""In-memory user store: the reference adapter of ``UserStore`` (tests, throwaway runs).

Every method runs without awaiting anything, so each is atomic on the event loop: ``admit``'s check
and insert cannot interleave with another call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from domain.credits import LedgerEntry, LedgerKind, Refunded, StarPayment
from domain.errors import AlreadyAccepted
from domain.lanes import Usage
from domain.models import Lane
from domain.users import (
    ACTIVE_STATES,
    JobRecord,
    JobState,
    Outcome,
    StoreStats,
    UserLimits,
    UserPrefs,
    apply_outcome,
    check_admission,
)


class MemoryUserStore:
    def __init__(self) -> None:
        self.prefs: dict[int, UserPrefs] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.blocked: dict[int, float] = {}
        self.banned: dict[int, bool] = {}  # user id -> told about the ban
        self.balances: dict[int, int] = {}  # user id -> credits left
        self.payments: dict[str, StarPayment] = {}  # charge id -> payment
        self.entries: list[LedgerEntry] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def get_prefs(self, user_id: int) -> UserPrefs:
        prefs = self.prefs.get(user_id) or UserPrefs(user_id)
        return replace(prefs, blocked=user_id in self.blocked, banned=user_id in self.banned)

    async def save_prefs(self, prefs: UserPrefs) -> None:
        self.prefs[prefs.user_id] = replace(prefs, blocked=False, banned=False)

    async def admit(self, records: Sequence[JobRecord], limits: UserLimits, now: float) -> None:
        if not records:
            return
        if all(r.job_id in self.jobs for r in records):
            raise AlreadyAccepted(job_id=records[0].job_id)
        records = [r for r in records if r.job_id not in self.jobs]
        user_id = records[0].user_id
        mine = [r for r in self.jobs.values() if r.user_id == user_id]
        check_admission(
            limits,
            now=now,
            active_created=[r.created_at for r in mine if r.state in ACTIVE_STATES],
            recent_created=[r.created_at for r in mine if now - r.created_at < limits.window_s],
            requested=len(records),
        )
        for record in records:
            self.jobs[record.job_id] = record

    async def usage(self, user_id: int, *, recent_since: float, day_since: float) -> Usage:
        counted = [
            r
            for r in self.jobs.values()
            if r.user_id == user_id and r.state in (JobState.QUEUED, JobState.RUNNING, JobState.DONE)
        ]
        return Usage(
            recent=sum(1 for r in counted if r.created_at >= recent_since),
            priority_today=sum(1 for r in counted if r.created_at >= day_since and r.lane == Lane.PRIORITY),
        )

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    async def set_status_message(self, job_id: str, message_id: int) -> None:
        if job_id in self.jobs:
            self.jobs[job_id] = replace(self.jobs[job_id], status_message_id=message_id)

    async def set_inline_message(self, job_id: str, inline_message_id: str) -> None:
        if job_id in self.jobs:
            self.jobs[job_id] = replace(self.jobs[job_id], inline_message_id=inline_message_id)

    async def set_file_id(self, job_id: str, file_id: str) -> None:
        record = self.jobs.get(job_id)
        if record is not None:
            self.jobs[job_id] = replace(record, file_id=file_id)

    async def mark_published(self, job_id: str, at: float) -> None:
        record = self.jobs.get(job_id)
        if record is not None and record.published_at is None:
            self.jobs[job_id] = replace(record, published_at=at)

    async def unpublished(self, created_before: float) -> list[JobRecord]:
        found = [
            r
            for r in self.jobs.values()
            if r.state == JobState.QUEUED and r.published_at is None and r.created_at < created_before
        ]
        return sorted(found, key=lambda r: (r.created_at, r.job_id))

    async def mark_started(self, job_id: str, at: float, worker_id: str) -> JobRecord | None:
        record = self.jobs.get(job_id)
        if record is not None and record.state == JobState.QUEUED:
            record = self.jobs[job_id] = replace(record, state=JobState.RUNNING, started_at=at, worker_id=worker_id)
        return record

    async def finish(self, job_id: str, outcome: Outcome) -> JobRecord | None:
        record = self.jobs.get(job_id)
        if record is None:
            return None
        record = self.jobs[job_id] = apply_outcome(record, outcome)
        return record

    async def cancel(self, job_id: str, user_id: int, at: float) -> JobRecord | None:
        record = self.jobs.get(job_id)
        if record is None or record.user_id != user_id or record.state not in ACTIVE_STATES:
            return None
        record = self.jobs[job_id] = replace(record, state=JobState.CANCELLED, finished_at=at)
        return record

    async def active_jobs(self, user_id: int | None = None, since: float = 0.0) -> list[JobRecord]:
        found = [
            r
            for r in self.jobs.values()
            if r.state in ACTIVE_STATES and r.created_at >= since and (user_id is None or r.user_id == user_id)
        ]
        return sorted(found, key=lambda r: (r.created_at, r.job_id))

    async def history(self, user_id: int, limit: int) -> list[JobRecord]:
        done = [r for r in self.jobs.values() if r.user_id == user_id and r.state == JobState.DONE]
        done.sort(key=lambda r: (r.finished_at or 0.0, r.created_at), reverse=True)
        return done[:limit]

    async def mark_blocked(self, user_id: int, at: float) -> None:
        self.blocked.setdefault(user_id, at)

    async def unblock(self, user_id: int) -> None:
        self.blocked.pop(user_id, None)

    async def is_blocked(self, user_id: int) -> bool:
        return user_id in self.blocked

    async def ban(self, user_id: int, at: float) -> bool:
        if user_id in self.banned:
            return False
        self.banned[user_id] = False
        return True

    async def unban(self, user_id: int) -> bool:
        return self.banned.pop(user_id, None) is not None

    async def ban_noticed(self, user_id: int) -> bool:
        if self.banned.get(user_id, True):  # not banned, or told already
            return False
        self.banned[user_id] = True
        return True

    async def stats(self, since: float) -> StoreStats:
        recent = [r for r in self.jobs.values() if r.created_at >= since]
        workers: dict[str, float] = {}
        for r in self.jobs.values():
            seen = r.finished_at if r.state in (JobState.DONE, JobState.FAILED) else r.started_at
            if r.worker_id and seen is not None and seen >= since:
                workers[r.worker_id] = max(workers.get(r.worker_id, 0.0), seen)
        return StoreStats(
            submitted=len(recent),
            done=sum(r.state == JobState.DONE for r in recent),
            failed=sum(r.state == JobState.FAILED for r in recent),
            cancelled=sum(r.state == JobState.CANCELLED for r in recent),
            active=sum(r.state in ACTIVE_STATES for r in self.jobs.values()),
            users=len({r.user_id for r in recent}),
            blocked_users=len(self.blocked),
            workers=workers,
            banned_users=len(self.banned),
        )

    # --- credits (``CreditStore``) ------------------------------------------------------------
    async def credit_purchase(self, payment: StarPayment) -> bool:
        if payment.charge_id in self.payments:
            return False
        self.payments[payment.charge_id] = payment
        self.balances[payment.user_id] = self.balances.get(payment.user_id, 0) + payment.credits
        self.entries.append(
            LedgerEntry(
                payment.user_id,
                LedgerKind.PURCHASE,
                payment.credits,
                payment.paid_at,
                stars=payment.stars,
                charge_id=payment.charge_id,
            )
        )
        return True

    async def credits(self, user_id: int) -> int:
        return self.balances.get(user_id, 0)

    async def spend_credit(self, user_id: int, job_id: str, at: float) -> bool:
        record = self.jobs.get(job_id)
        if record is None or record.user_id != user_id:
            return False
        if record.paid_credit:
            return True
        if not record.active:  # ended already: its give-back has run
            return False
        if self.balances.get(user_id, 0) <= 0:
            return False
        self.balances[user_id] -= 1
        self.jobs[job_id] = replace(record, paid_credit=True)
        self.entries.append(LedgerEntry(user_id, LedgerKind.SPEND, -1, at, job_id=job_id))
        return True

    async def give_back_credit(self, job_id: str, at: float) -> bool:
        record = self.jobs.get(job_id)
        if record is None or not record.paid_credit:
            return False
        if any(e.job_id == job_id and e.kind in (LedgerKind.GIVE_BACK, LedgerKind.KEPT) for e in self.entries):
            return False
        self.balances[record.user_id] = self.balances.get(record.user_id, 0) + 1
        self.entries.append(LedgerEntry(record.user_id, LedgerKind.GIVE_BACK, 1, at, job_id=job_id))
        return True

    async def get_payment(self, charge_id: str) -> StarPayment | None:
        return self.payments.get(charge_id)

    async def refund_payment(self, charge_id: str, at: float) -> Refunded | None:
        payment = self.payments.get(charge_id)
        if payment is None:
            return None
        if payment.refunded_at is not None:
            return Refunded(payment, payment.credits_taken_back, first=False)
        taken = min(payment.credits, self.balances.get(payment.user_id, 0))
        self.balances[payment.user_id] = self.balances.get(payment.user_id, 0) - taken
        payment = self.payments[charge_id] = replace(payment, refunded_at=at, credits_taken_back=taken)
        self.entries.append(
            LedgerEntry(payment.user_id, LedgerKind.REFUND, -taken, at, stars=-payment.stars, charge_id=charge_id)
        )
        settled = {e.job_id for e in self.entries if e.kind in (LedgerKind.GIVE_BACK, LedgerKind.KEPT)}
        in_flight = sorted(
            (r for r in self.jobs.values() if r.user_id == payment.user_id and r.paid_credit and r.active),
            key=lambda r: (-r.created_at, r.job_id),
        )
        for record in [r for r in in_flight if r.job_id not in settled][: payment.credits - taken]:
            self.entries.append(
                LedgerEntry(payment.user_id, LedgerKind.KEPT, 0, at, charge_id=charge_id, job_id=record.job_id)
            )
        return Refunded(payment, taken, first=True)

    async def ledger(self, user_id: int) -> list[LedgerEntry]:
        return [e for e in self.entries if e.user_id == user_id]
