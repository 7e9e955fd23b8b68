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

from adapters.sqlite.db import SqliteDatabase
from domain.errors import AlreadyAccepted
from domain.users import (
    ACTIVE_STATES,
    JOB_COLUMNS,
    PREFS_COLUMNS,
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
    ban_noticed_at REAL
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
    file_id TEXT
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
)
"""
# Columns added since the first release: a database made by it gets them at start.
COLUMNS = (
    ("jobs", "published_at", "REAL"),
    ("jobs", "request_message_id", "INTEGER"),
    ("jobs", "file_id", "TEXT"),
    ("deliveries", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("deliveries", "incarnation", "TEXT NOT NULL DEFAULT ''"),
    ("users", "translate", "INTEGER NOT NULL DEFAULT 1"),
    ("users", "banned_at", "REAL"),
    ("users", "ban_noticed_at", "REAL"),
)


def database(path: str | Path) -> SqliteDatabase:
    """The database file of the user store and the delivery log, with their schema."""
    return SqliteDatabase(path, SCHEMA, columns=COLUMNS)


_COLUMNS = JOB_COLUMNS
_ACTIVE = tuple(s.value for s in ACTIVE_STATES)


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord.from_row(row)


def _values(record: JobRecord) -> tuple[object, ...]:
    return record.row()


_INSERT = f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


class SqliteUserStore:
    def __init__(self, path: str | Path | SqliteDatabase) -> None:
        self.db = path if isinstance(path, SqliteDatabase) else database(path)

    async def start(self) -> None:
        await self.db.start()

    async def stop(self) -> None:
        await self.db.stop()

    # --- preferences --------------------------------------------------------------------------
    async def get_prefs(self, user_id: int) -> UserPrefs:
        rows = await self.db.read(f"SELECT {PREFS_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
        return UserPrefs.from_row(user_id, rows[0]) if rows else UserPrefs(user_id)

    async def save_prefs(self, prefs: UserPrefs) -> None:
        await self.db.write(
            "INSERT INTO users (user_id, locale, aspect, quality, send_as, translate) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET locale = excluded.locale, aspect = excluded.aspect, "
            "quality = excluded.quality, send_as = excluded.send_as, translate = excluded.translate",
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
            known = {
                row[0]
                for row in conn.execute(
                    f"SELECT job_id FROM jobs WHERE job_id IN ({', '.join('?' * len(records))})",
                    tuple(r.job_id for r in records),
                )
            }
            if len(known) == len(records):
                raise AlreadyAccepted(job_id=records[0].job_id)
            new = [r for r in records if r.job_id not in known]
            active = [
                r[0]
                for r in conn.execute(
                    f"SELECT created_at FROM jobs WHERE user_id = ? AND state IN ({', '.join('?' * len(_ACTIVE))})",
                    (user_id, *_ACTIVE),
                )
            ]
            recent = [
                r[0]
                for r in conn.execute(
                    "SELECT created_at FROM jobs WHERE user_id = ? AND created_at > ?",
                    (user_id, now - limits.window_s),
                )
            ]
            check_admission(limits, now=now, active_created=active, recent_created=recent, requested=len(new))
            conn.executemany(_INSERT, [_values(r) for r in new])

        await self.db.run(self.db.transaction, tx)

    async def get_job(self, job_id: str) -> JobRecord | None:
        rows = await self.db.read("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _record(rows[0]) if rows else None

    async def set_status_message(self, job_id: str, message_id: int) -> None:
        await self.db.write("UPDATE jobs SET status_message_id = ? WHERE job_id = ?", (message_id, job_id))

    async def set_file_id(self, job_id: str, file_id: str) -> None:
        await self.db.write("UPDATE jobs SET file_id = ? WHERE job_id = ?", (file_id, job_id))

    async def mark_published(self, job_id: str, at: float) -> None:
        await self.db.write("UPDATE jobs SET published_at = ? WHERE job_id = ? AND published_at IS NULL", (at, job_id))

    async def unpublished(self, created_before: float) -> list[JobRecord]:
        rows = await self.db.read(
            "SELECT * FROM jobs WHERE state = ? AND published_at IS NULL AND created_at < ? "
            "ORDER BY created_at, job_id",
            (JobState.QUEUED.value, created_before),
        )
        return [_record(r) for r in rows]

    async def mark_started(self, job_id: str, at: float, worker_id: str) -> JobRecord | None:
        def tx(conn: sqlite3.Connection) -> JobRecord | None:
            conn.execute(
                "UPDATE jobs SET state = ?, started_at = ?, worker_id = ? WHERE job_id = ? AND state = ?",
                (JobState.RUNNING.value, at, worker_id, job_id, JobState.QUEUED.value),
            )
            row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            return _record(row) if row else None

        return await self.db.run(self.db.transaction, tx)

    async def finish(self, job_id: str, outcome: Outcome) -> JobRecord | None:
        def tx(conn: sqlite3.Connection) -> JobRecord | None:
            row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            record = apply_outcome(_record(row), outcome)
            conn.execute(_INSERT, _values(record))
            return record

        return await self.db.run(self.db.transaction, tx)

    async def cancel(self, job_id: str, user_id: int, at: float) -> JobRecord | None:
        def tx(conn: sqlite3.Connection) -> JobRecord | None:
            row = conn.execute(
                f"SELECT * FROM jobs WHERE job_id = ? AND user_id = ? AND state IN ({', '.join('?' * len(_ACTIVE))})",
                (job_id, user_id, *_ACTIVE),
            ).fetchone()
            if row is None:
                return None
            record = replace(_record(row), state=JobState.CANCELLED, finished_at=at)
            conn.execute(_INSERT, _values(record))
            return record

        return await self.db.run(self.db.transaction, tx)

    async def active_jobs(self, user_id: int | None = None, since: float = 0.0) -> list[JobRecord]:
        sql = f"SELECT * FROM jobs WHERE state IN ({', '.join('?' * len(_ACTIVE))}) AND created_at >= ?"
        params: tuple[object, ...] = (*_ACTIVE, since)
        if user_id is not None:
            sql += " AND user_id = ?"
            params += (user_id,)
        rows = await self.db.read(sql + " ORDER BY created_at, job_id", params)
        return [_record(r) for r in rows]

    async def history(self, user_id: int, limit: int) -> list[JobRecord]:
        rows = await self.db.read(
            "SELECT * FROM jobs WHERE user_id = ? AND state = ? ORDER BY finished_at DESC, created_at DESC LIMIT ?",
            (user_id, JobState.DONE.value, limit),
        )
        return [_record(r) for r in rows]

    # --- blocked users --------------------------------------------------------------------------
    async def mark_blocked(self, user_id: int, at: float) -> None:
        await self.db.write(
            "INSERT INTO users (user_id, blocked_at) VALUES (?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET blocked_at = COALESCE(users.blocked_at, excluded.blocked_at)",
            (user_id, at),
        )

    async def unblock(self, user_id: int) -> None:
        await self.db.write("UPDATE users SET blocked_at = NULL WHERE user_id = ?", (user_id,))

    async def is_blocked(self, user_id: int) -> bool:
        rows = await self.db.read("SELECT 1 FROM users WHERE user_id = ? AND blocked_at IS NOT NULL", (user_id,))
        return bool(rows)

    # --- banned users ---------------------------------------------------------------------------
    async def ban(self, user_id: int, at: float) -> bool:
        changed = await self.db.write(
            "INSERT INTO users (user_id, banned_at) VALUES (?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET banned_at = excluded.banned_at, ban_noticed_at = NULL "
            "WHERE users.banned_at IS NULL",
            (user_id, at),
        )
        return changed > 0

    async def unban(self, user_id: int) -> bool:
        changed = await self.db.write(
            "UPDATE users SET banned_at = NULL, ban_noticed_at = NULL WHERE user_id = ? AND banned_at IS NOT NULL",
            (user_id,),
        )
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
            counts = dict(
                conn.execute(
                    "SELECT state, COUNT(*) FROM jobs WHERE created_at >= ? GROUP BY state", (since,)
                ).fetchall()
            )
            active = conn.execute(
                f"SELECT COUNT(*) FROM jobs WHERE state IN ({', '.join('?' * len(_ACTIVE))})", _ACTIVE
            ).fetchone()[0]
            users = conn.execute("SELECT COUNT(DISTINCT user_id) FROM jobs WHERE created_at >= ?", (since,)).fetchone()[
                0
            ]
            blocked = conn.execute("SELECT COUNT(*) FROM users WHERE blocked_at IS NOT NULL").fetchone()[0]
            banned = conn.execute("SELECT COUNT(*) FROM users WHERE banned_at IS NOT NULL").fetchone()[0]
            workers = dict(
                conn.execute(
                    "SELECT worker_id, MAX(CASE WHEN state IN ('done', 'failed') THEN finished_at "
                    "ELSE started_at END) AS seen FROM jobs WHERE worker_id != '' "
                    "GROUP BY worker_id HAVING seen >= ?",
                    (since,),
                ).fetchall()
            )
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
