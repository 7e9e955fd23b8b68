"""The SQLite user store's credits (``domain.ports.CreditStore``): each move in one ``BEGIN
IMMEDIATE`` transaction with its ledger row, so two bot processes sharing the file cannot both
credit one payment or spend one credit twice."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from adapters.sql import user_store as sql
from adapters.sqlite.db import SqliteDatabase
from domain.credits import LedgerEntry, LedgerKind, Refunded, StarPayment


class SqliteCredits:
    """Mixed into ``SqliteUserStore`` (the same database as the jobs)."""

    db: SqliteDatabase

    async def credit_purchase(self, payment: StarPayment) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            p = payment
            inserted = conn.execute(
                sql.INSERT_PAYMENT, (p.charge_id, p.user_id, p.stars, p.credits, p.payload, p.paid_at)
            ).rowcount
            if not inserted:
                return False  # this charge was credited before
            conn.execute(sql.ADD_CREDITS, (p.user_id, p.credits))
            entry = LedgerEntry(
                p.user_id, LedgerKind.PURCHASE, p.credits, p.paid_at, stars=p.stars, charge_id=p.charge_id
            )
            conn.execute(sql.ADD_LEDGER, sql.ledger_row(entry))
            return True

        return await self.db.run(self.db.transaction, tx)

    async def credits(self, user_id: int) -> int:
        rows = await self.db.read(sql.GET_CREDITS, (user_id,))
        return int(rows[0][0]) if rows else 0

    async def spend_credit(self, user_id: int, job_id: str, at: float) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            job = conn.execute(sql.JOB_PAYMENT, (job_id,)).fetchone()
            if job is None or job["user_id"] != user_id:
                return False
            if job["paid_credit"]:
                return True  # paid before (the same job admitted again)
            if job["state"] not in sql.ACTIVE:  # ended already: its give-back has run
                return False
            if not conn.execute(sql.TAKE_ONE_CREDIT, (user_id,)).rowcount:
                return False
            conn.execute(sql.MARK_PAID, (True, job_id))
            conn.execute(sql.ADD_LEDGER, sql.ledger_row(LedgerEntry(user_id, LedgerKind.SPEND, -1, at, job_id=job_id)))
            return True

        return await self.db.run(self.db.transaction, tx)

    async def give_back_credit(self, job_id: str, at: float) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            job = conn.execute(sql.JOB_PAYMENT, (job_id,)).fetchone()
            if job is None or not job["paid_credit"]:
                return False
            if conn.execute(sql.GIVEN_BACK, (job_id, *sql.NOT_BACK)).fetchone():
                return False
            user_id = int(job["user_id"])
            conn.execute(sql.ADD_CREDITS, (user_id, 1))
            entry = LedgerEntry(user_id, LedgerKind.GIVE_BACK, 1, at, job_id=job_id)
            conn.execute(sql.ADD_LEDGER, sql.ledger_row(entry))
            return True

        return await self.db.run(self.db.transaction, tx)

    async def get_payment(self, charge_id: str) -> StarPayment | None:
        rows = await self.db.read(sql.GET_PAYMENT, (charge_id,))
        return sql.payment(rows[0]) if rows else None

    async def refund_payment(self, charge_id: str, at: float) -> Refunded | None:
        def tx(conn: sqlite3.Connection) -> Refunded | None:
            row = conn.execute(sql.GET_PAYMENT, (charge_id,)).fetchone()
            if row is None:
                return None
            payment = sql.payment(row)
            if payment.refunded_at is not None:
                return Refunded(payment, payment.credits_taken_back, first=False)
            left = conn.execute(sql.GET_CREDITS, (payment.user_id,)).fetchone()
            taken = min(payment.credits, int(left[0]) if left else 0)
            conn.execute(sql.TAKE_CREDITS, (taken, payment.user_id, taken))
            conn.execute(sql.MARK_REFUNDED, (at, taken, charge_id))
            entry = LedgerEntry(
                payment.user_id, LedgerKind.REFUND, -taken, at, stars=-payment.stars, charge_id=charge_id
            )
            conn.execute(sql.ADD_LEDGER, sql.ledger_row(entry))
            short = payment.credits - taken
            if short > 0:
                params = (payment.user_id, True, *sql.ACTIVE, *sql.NOT_BACK, short)
                jobs = [r["job_id"] for r in conn.execute(sql.PAID_IN_FLIGHT, params).fetchall()]
                conn.executemany(sql.ADD_LEDGER, sql.kept_rows(payment.user_id, jobs, charge_id, at))
            done = replace(payment, refunded_at=at, credits_taken_back=taken)
            return Refunded(done, taken, first=True)

        return await self.db.run(self.db.transaction, tx)

    async def ledger(self, user_id: int) -> list[LedgerEntry]:
        rows = await self.db.read(sql.LEDGER_OF, (user_id,))
        return [sql.ledger_entry(r) for r in rows]
