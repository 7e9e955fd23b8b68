"""The PostgreSQL user store's credits (``domain.ports.CreditStore``): each move in one
transaction with its ledger row, the rows it reads locked (``FOR UPDATE``), so bot instances on
any host cannot both credit one payment, spend one credit twice or give one back twice."""

from __future__ import annotations

from dataclasses import replace

from adapters.postgres.db import PostgresDatabase, changed
from adapters.sql import user_store as sql
from adapters.sql.user_store import numbered
from domain.credits import LedgerEntry, LedgerKind, Refunded, StarPayment

_INSERT_PAYMENT = numbered(sql.INSERT_PAYMENT)
_GET_PAYMENT = numbered(sql.GET_PAYMENT)
_MARK_REFUNDED = numbered(sql.MARK_REFUNDED)
_ADD_CREDITS = numbered(sql.ADD_CREDITS)
_GET_CREDITS = numbered(sql.GET_CREDITS)
_TAKE_ONE_CREDIT = numbered(sql.TAKE_ONE_CREDIT)
_TAKE_CREDITS = numbered(sql.TAKE_CREDITS)
_JOB_PAYMENT = numbered(sql.JOB_PAYMENT)
_MARK_PAID = numbered(sql.MARK_PAID)
_ADD_LEDGER = numbered(sql.ADD_LEDGER)
_LEDGER_OF = numbered(sql.LEDGER_OF)
_GIVEN_BACK = numbered(sql.GIVEN_BACK)
_PAID_IN_FLIGHT = numbered(sql.PAID_IN_FLIGHT)


class PostgresCredits:
    """Mixed into ``PostgresUserStore`` (the same database as the jobs)."""

    db: PostgresDatabase

    async def credit_purchase(self, payment: StarPayment) -> bool:
        p = payment
        async with self.db.transaction() as conn:
            status = await conn.execute(
                _INSERT_PAYMENT, p.charge_id, p.user_id, p.stars, p.credits, p.payload, p.paid_at
            )
            if not changed(status):
                return False  # this charge was credited before
            await conn.execute(_ADD_CREDITS, p.user_id, p.credits)
            entry = LedgerEntry(
                p.user_id, LedgerKind.PURCHASE, p.credits, p.paid_at, stars=p.stars, charge_id=p.charge_id
            )
            await conn.execute(_ADD_LEDGER, *sql.ledger_row(entry))
            return True

    async def credits(self, user_id: int) -> int:
        rows = await self.db.fetch(_GET_CREDITS, user_id)
        return int(rows[0][0]) if rows else 0

    async def spend_credit(self, user_id: int, job_id: str, at: float) -> bool:
        async with self.db.transaction() as conn:
            job = await conn.fetchrow(_JOB_PAYMENT + " FOR UPDATE", job_id)
            if job is None or job["user_id"] != user_id:
                return False
            if job["paid_credit"]:
                return True  # paid before (the same job admitted again)
            if job["state"] not in sql.ACTIVE:  # ended already: its give-back has run
                return False
            if not changed(await conn.execute(_TAKE_ONE_CREDIT, user_id)):
                return False
            await conn.execute(_MARK_PAID, True, job_id)
            entry = LedgerEntry(user_id, LedgerKind.SPEND, -1, at, job_id=job_id)
            await conn.execute(_ADD_LEDGER, *sql.ledger_row(entry))
            return True

    async def give_back_credit(self, job_id: str, at: float) -> bool:
        async with self.db.transaction() as conn:
            job = await conn.fetchrow(_JOB_PAYMENT + " FOR UPDATE", job_id)
            if job is None or not job["paid_credit"]:
                return False
            if await conn.fetchrow(_GIVEN_BACK, job_id, *sql.NOT_BACK):
                return False
            user_id = int(job["user_id"])
            await conn.execute(_ADD_CREDITS, user_id, 1)
            await conn.execute(
                _ADD_LEDGER, *sql.ledger_row(LedgerEntry(user_id, LedgerKind.GIVE_BACK, 1, at, job_id=job_id))
            )
            return True

    async def get_payment(self, charge_id: str) -> StarPayment | None:
        rows = await self.db.fetch(_GET_PAYMENT, charge_id)
        return sql.payment(rows[0]) if rows else None

    async def refund_payment(self, charge_id: str, at: float) -> Refunded | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(_GET_PAYMENT + " FOR UPDATE", charge_id)
            if row is None:
                return None
            payment = sql.payment(row)
            if payment.refunded_at is not None:
                return Refunded(payment, payment.credits_taken_back, first=False)
            left = await conn.fetchval(_GET_CREDITS + " FOR UPDATE", payment.user_id)
            taken = min(payment.credits, int(left or 0))
            await conn.execute(_TAKE_CREDITS, taken, payment.user_id, taken)
            await conn.execute(_MARK_REFUNDED, at, taken, charge_id)
            entry = LedgerEntry(
                payment.user_id, LedgerKind.REFUND, -taken, at, stars=-payment.stars, charge_id=charge_id
            )
            await conn.execute(_ADD_LEDGER, *sql.ledger_row(entry))
            short = payment.credits - taken
            if short > 0:  # (the jobs locked: a give-back of one waits, then finds it kept)
                params = (payment.user_id, True, *sql.ACTIVE, *sql.NOT_BACK, short)
                jobs = [r["job_id"] for r in await conn.fetch(_PAID_IN_FLIGHT + " FOR UPDATE", *params)]
                await conn.executemany(_ADD_LEDGER, sql.kept_rows(payment.user_id, jobs, charge_id, at))
            return Refunded(replace(payment, refunded_at=at, credits_taken_back=taken), taken, first=True)

    async def ledger(self, user_id: int) -> list[LedgerEntry]:
        rows = await self.db.fetch(_LEDGER_OF, user_id)
        return [sql.ledger_entry(r) for r in rows]
