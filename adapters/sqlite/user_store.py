"""SQLite user store: preferences and jobs in one file on a volume (the durable default).

Several bot processes on one host may share the file (WAL, busy timeout, ``BEGIN IMMEDIATE`` around
``admit``, so per-user limits hold across them). Across hosts, use a server database with the same
port (Postgres: the same tables, ``SELECT ... FOR UPDATE`` on the user's row in ``admit``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from adapters.sql import user_store as sql
from adapters.sqlite.credits import SqliteCredits
from adapters.sqlite.db import SqliteDatabase
from domain.errors import AlreadyAccepted
from domain.lanes import Usage
from domain.models import Lane
from domain.users import (
    JobRecord,
    JobState,
    Outcome,
    StoreStats,
    UserLimits,
    UserPrefs,
    apply_outcome,
    check_admission,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY,
    locale TEXT,
    aspect TEXT,
    quality TEXT NOT NULL DEFAULT 'auto',
    send_as TEXT NOT NULL DEFAULT 'photo',
    blocked_at REAL,
    translate INTEGER NOT NULL DEFAULT 1,
    banned_at REAL,
    ban_noticed_at REAL,
    credits INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    quality TEXT NOT NULL,
    locale TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    status_message_id INTEGER,
    started_at REAL,
    finished_at REAL,
    image_key TEXT,
    image_url TEXT,
    profile TEXT,
    profile_reason TEXT,
    worker_id TEXT NOT NULL DEFAULT '',
    error_code TEXT,
    total_s REAL NOT NULL DEFAULT 0,
    published_at REAL,
    request_message_id INTEGER,
    file_id TEXT,
    inline_message_id TEXT,
    paid_credit INTEGER NOT NULL DEFAULT 0,
    lane TEXT NOT NULL DEFAULT 'priority'
);
CREATE INDEX IF NOT EXISTS jobs_user_created ON jobs (user_id, created_at);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
CREATE TABLE IF NOT EXISTS deliveries (
    job_id TEXT PRIMARY KEY,
    claimed_at REAL NOT NULL,
    delivered_at REAL,
    owner TEXT NOT NULL DEFAULT '',
    incarnation TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS star_payments (
    charge_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    stars INTEGER NOT NULL,
    credits INTEGER NOT NULL,
    payload TEXT NOT NULL,
    paid_at REAL NOT NULL,
    refunded_at REAL,
    credits_taken_back INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS credit_ledger (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    credits INTEGER NOT NULL,
    stars INTEGER NOT NULL DEFAULT 0,
    charge_id TEXT,
    job_id TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS credit_ledger_user ON credit_ledger (user_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS credit_ledger_job ON credit_ledger (job_id, kind) WHERE job_id IS NOT NULL
"""
# Columns added since the first release: a database made by it gets them at start.
COLUMNS = (
    ("jobs", "published_at", "REAL"),
    ("jobs", "request_message_id", "INTEGER"),
    ("jobs", "file_id", "TEXT"),
    ("jobs", "inline_message_id", "TEXT"),
    ("jobs", "lane", "TEXT NOT NULL DEFAULT 'priority'"),
    ("deliveries", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("deliveries", "incarnation", "TEXT NOT NULL DEFAULT ''"),
    ("users", "translate", "INTEGER NOT NULL DEFAULT 1"),
    ("users", "banned_at", "REAL"),
    ("users", "ban_noticed_at", "REAL"),
    ("users", "credits", "INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "paid_credit", "INTEGER NOT NULL DEFAULT 0"),
)


def database(path: str | Path) -> SqliteDatabase:
    """The database file of the user store and the delivery log, with their schema."""
    return SqliteDatabase(path, SCHEMA, columns=COLUMNS)


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord.from_row(row)


class SqliteUserStore(SqliteCredits):
    def __init__(self, path: str | Path | SqliteDatabase) -> None:
        self.db = path if isinstance(path, SqliteDatabase) else database(path)

    async def start(self) -> None:
        await self.db.start()

    async def stop(self) -> None:
        await self.db.stop()

    # --- preferences --------------------------------------------------------------------------
    async def get_prefs(self, user_id: int) -> UserPrefs:
        rows = await self.db.read(sql.GET_PREFS, (user_id,))
        return UserPrefs.from_row(user_id, rows[0]) if rows else UserPrefs(user_id)

    async def save_prefs(self, prefs: UserPrefs) -> None:
        await self.db.write(
            sql.SAVE_PREFS,
            (
                prefs.user_id,
                prefs.locale.value if prefs.locale else None,
                prefs.aspect,
                prefs.quality.value,
                prefs.send_as.value,
                int(prefs.translate),
            ),
        )

    # --- jobs ---------------------------------------------------------------------------------
    async def admit(self, records: Sequence[JobRecord], limits: UserLimits, now: float) -> None:
        if not records:
            return
        user_id = records[0].user_id

        def tx(conn: sqlite3.Connection) -> None:
            known = {row[0] for row in conn.execute(sql.known_jobs(len(records)), tuple(r.job_id for r in records))}
            if len(known) == len(records):
                raise AlreadyAccepted(job_id=records[0].job_id)
            new = [r for r in records if r.job_id not in known]
            active = [r[0] for r in conn.execute(sql.ACTIVE_CREATED, (user_id, *sql.ACTIVE))]
            recent = [r[0] for r in conn.execute(sql.RECENT_CREATED, (user_id, now - limits.window_s))]
            check_admission(limits, now=now, active_created=active, recent_created=recent, requested=len(new))
            conn.executemany(sql.INSERT_NEW_JOB, [r.row() for r in new])

        await self.db.run(self.db.transaction, tx)

    async def usage(self, user_id: int, *, recent_since: float, day_since: float) -> Usage:
        params = (recent_since, day_since, Lane.PRIORITY.value, user_id, min(recent_since, day_since), *sql.COUNTED)
        [row] = await self.db.read(sql.USAGE, params)
        return Usage(recent=int(row["recent"]), priority_today=int(row["priority_today"]))

    async def get_job(self, job_id: str) -> JobRecord | None:
        rows = await self.db.read(sql.GET_JOB, (job_id,))
        return _record(rows[0]) if rows else None

    async def set_status_message(self, job_id: str, message_id: int) -> None:
        await self.db.write(sql.SET_STATUS_MESSAGE, (message_id, job_id))

    async def set_inline_message(self, job_id: str, inline_message_id: str) -> None:
        await self.db.write(sql.SET_INLINE_MESSAGE, (inline_message_id, job_id))

    async def set_file_id(self, job_id: str, file_id: str) -> None:
        await self.db.write(sql.SET_FILE_ID, (file_id, job_id))

    async def mark_published(self, job_id: str, at: float) -> None:
        await self.db.write(sql.MARK_PUBLISHED, (at, job_id))

    async def unpublished(self, created_before: float) -> list[JobRecord]:
        rows = await self.db.read(sql.UNPUBLISHED, (sql.QUEUED, created_before))
        return [_record(r) for r in rows]

    async def mark_started(self, job_id: str, at: float, worker_id: str) -> JobRecord | None:
        def tx(conn: sqlite3.Connection) -> JobRecord | None:
            conn.execute(sql.MARK_STARTED, (sql.RUNNING, at, worker_id, job_id, sql.QUEUED))
            row = conn.execute(sql.GET_JOB, (job_id,)).fetchone()
            return _record(row) if row else None

        return await self.db.run(self.db.transaction, tx)

    async def finish(self, job_id: str, outcome: Outcome) -> JobRecord | None:
        def tx(conn: sqlite3.Connection) -> JobRecord | None:
            row = conn.execute(sql.GET_JOB, (job_id,)).fetchone()
            if row is None:
                return None
            record = apply_outcome(_record(row), outcome)
            conn.execute(sql.UPSERT_JOB, record.row())
            return record

        return await self.db.run(self.db.transaction, tx)

    async def cancel(self, job_id: str, user_id: int, at: float) -> JobRecord | None:
        def tx(conn: sqlite3.Connection) -> JobRecord | None:
            row = conn.execute(sql.ACTIVE_OF_USER, (job_id, user_id, *sql.ACTIVE)).fetchone()
            if row is None:
                return None
            record = replace(_record(row), state=JobState.CANCELLED, finished_at=at)
            conn.execute(sql.UPSERT_JOB, record.row())
            return record

        return await self.db.run(self.db.transaction, tx)

    async def active_jobs(self, user_id: int | None = None, since: float = 0.0) -> list[JobRecord]:
        query = sql.ACTIVE_SINCE
        params: tuple[object, ...] = (*sql.ACTIVE, since)
        if user_id is not None:
            query += sql.AND_USER
            params += (user_id,)
        rows = await self.db.read(query + sql.BY_AGE, params)
        return [_record(r) for r in rows]

    async def history(self, user_id: int, limit: int) -> list[JobRecord]:
        rows = await self.db.read(sql.HISTORY, (user_id, sql.DONE, limit))
        return [_record(r) for r in rows]

    # --- blocked users --------------------------------------------------------------------------
    async def mark_blocked(self, user_id: int, at: float) -> None:
        await self.db.write(sql.MARK_BLOCKED, (user_id, at))

    async def unblock(self, user_id: int) -> None:
        await self.db.write(sql.UNBLOCK, (user_id,))

    async def is_blocked(self, user_id: int) -> bool:
        rows = await self.db.read(sql.IS_BLOCKED, (user_id,))
        return bool(rows)

    # --- banned users ---------------------------------------------------------------------------
    async def ban(self, user_id: int, at: float) -> bool:
        changed = await self.db.write(sql.BAN, (user_id, at))
        return changed > 0

    async def unban(self, user_id: int) -> bool:
        changed = await self.db.write(sql.UNBAN, (user_id,))
        return changed > 0

    async def ban_noticed(self, user_id: int) -> bool:
        changed = await self.db.write(
            "UPDATE users SET ban_noticed_at = ? WHERE user_id = ? AND banned_at IS NOT NULL "
            "AND ban_noticed_at IS NULL",
            (time.time(), user_id),
        )
        return changed > 0

    async def stats(self, since: float) -> StoreStats:
        def read(conn: sqlite3.Connection) -> StoreStats:
            counts = dict(conn.execute(sql.STATE_COUNTS, (since,)).fetchall())
            active = conn.execute(sql.ACTIVE_COUNT, sql.ACTIVE).fetchone()[0]
            users = conn.execute(sql.USERS_SINCE, (since,)).fetchone()[0]
            blocked = conn.execute(sql.BLOCKED_COUNT).fetchone()[0]
            banned = conn.execute(sql.BANNED_COUNT).fetchone()[0]
            workers = dict(conn.execute(sql.WORKERS_SEEN, (since,)).fetchall())
            return StoreStats(
                submitted=sum(counts.values()),
                done=counts.get(JobState.DONE.value, 0),
                failed=counts.get(JobState.FAILED.value, 0),
                cancelled=counts.get(JobState.CANCELLED.value, 0),
                active=active,
                users=users,
                blocked_users=blocked,
                workers=workers,
                banned_users=banned,
            )

        return await self.db.run(lambda: read(self.db.conn))
