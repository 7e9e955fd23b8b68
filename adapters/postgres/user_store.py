"""PostgreSQL user store: preferences and jobs shared by every bot instance on every host.

The same tables and semantics as the SQLite store. ``admit`` takes the user's row lock
(``SELECT ... FOR UPDATE`` on ``users``, the row made first if missing) before it counts, so two
instances admitting jobs of one user at the same moment run one after the other and the per-user
limits hold across instances; other users are not held up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from adapters.postgres.db import PostgresDatabase, changed
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

_COLUMNS = JOB_COLUMNS
_ACTIVE = [s.value for s in ACTIVE_STATES]
_PLACES = ", ".join(f"${i + 1}" for i in range(len(_COLUMNS)))
_UPSERT = (
    f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({_PLACES}) ON CONFLICT (job_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "job_id")
)
_INSERT_NEW = f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({_PLACES}) ON CONFLICT (job_id) DO NOTHING"


def _record(row: asyncpg.Record) -> JobRecord:
    return JobRecord.from_row(row)


def _values(record: JobRecord) -> tuple[object, ...]:
    return record.row()


class PostgresUserStore:
    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    async def start(self) -> None:
        await self.db.start()

    async def stop(self) -> None:
        await self.db.stop()

    def is_ready(self) -> bool:
        return self.db.is_ready()

    # --- preferences --------------------------------------------------------------------------
    async def get_prefs(self, user_id: int) -> UserPrefs:
        rows = await self.db.fetch(f"SELECT {PREFS_COLUMNS} FROM users WHERE user_id = $1", user_id)
        return UserPrefs.from_row(user_id, rows[0]) if rows else UserPrefs(user_id)

    async def save_prefs(self, prefs: UserPrefs) -> None:
        await self.db.execute(
            "INSERT INTO users (user_id, locale, aspect, quality, send_as, translate) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (user_id) DO UPDATE SET locale = excluded.locale, aspect = excluded.aspect, "
            "quality = excluded.quality, send_as = excluded.send_as, translate = excluded.translate",
            prefs.user_id,
            prefs.locale.value if prefs.locale else None,
            prefs.aspect,
            prefs.quality.value,
            prefs.send_as.value,
            prefs.translate,
        )

    # --- jobs ---------------------------------------------------------------------------------
    async def admit(self, records: Sequence[JobRecord], limits: UserLimits, now: float) -> None:
        if not records:
            return
        user_id = records[0].user_id
        async with self.db.transaction() as conn:
            # The user's lock: every admit of this user, on any instance, waits here in turn.
            await conn.execute("INSERT INTO users (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id)
            await conn.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", user_id)
            known = {
                r["job_id"]
                for r in await conn.fetch(
                    "SELECT job_id FROM jobs WHERE job_id = ANY($1::text[])", [r.job_id for r in records]
                )
            }
            if len(known) == len(records):
                raise AlreadyAccepted(job_id=records[0].job_id)
            new = [r for r in records if r.job_id not in known]
            active = [
                r["created_at"]
                for r in await conn.fetch(
                    "SELECT created_at FROM jobs WHERE user_id = $1 AND state = ANY($2::text[])", user_id, _ACTIVE
                )
            ]
            recent = [
                r["created_at"]
                for r in await conn.fetch(
                    "SELECT created_at FROM jobs WHERE user_id = $1 AND created_at > $2",
                    user_id,
                    now - limits.window_s,
                )
            ]
            check_admission(limits, now=now, active_created=active, recent_created=recent, requested=len(new))
            await conn.executemany(_INSERT_NEW, [_values(r) for r in new])

    async def get_job(self, job_id: str) -> JobRecord | None:
        rows = await self.db.fetch("SELECT * FROM jobs WHERE job_id = $1", job_id)
        return _record(rows[0]) if rows else None

    async def set_status_message(self, job_id: str, message_id: int) -> None:
        await self.db.execute("UPDATE jobs SET status_message_id = $1 WHERE job_id = $2", message_id, job_id)

    async def set_file_id(self, job_id: str, file_id: str) -> None:
        await self.db.execute("UPDATE jobs SET file_id = $1 WHERE job_id = $2", file_id, job_id)

    async def mark_published(self, job_id: str, at: float) -> None:
        await self.db.execute(
            "UPDATE jobs SET published_at = $1 WHERE job_id = $2 AND published_at IS NULL", at, job_id
        )

    async def unpublished(self, created_before: float) -> list[JobRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM jobs WHERE state = 'queued' AND published_at IS NULL AND created_at < $1 "
            "ORDER BY created_at, job_id",
            created_before,
        )
        return [_record(r) for r in rows]

    async def mark_started(self, job_id: str, at: float, worker_id: str) -> JobRecord | None:
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE jobs SET state = $1, started_at = $2, worker_id = $3 WHERE job_id = $4 AND state = $5",
                JobState.RUNNING.value,
                at,
                worker_id,
                job_id,
                JobState.QUEUED.value,
            )
            row = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
        return _record(row) if row else None

    async def finish(self, job_id: str, outcome: Outcome) -> JobRecord | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1 FOR UPDATE", job_id)
            if row is None:
                return None
            record = apply_outcome(_record(row), outcome)
            await conn.execute(_UPSERT, *_values(record))
            return record

    async def cancel(self, job_id: str, user_id: int, at: float) -> JobRecord | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM jobs WHERE job_id = $1 AND user_id = $2 AND state = ANY($3::text[]) FOR UPDATE",
                job_id,
                user_id,
                _ACTIVE,
            )
            if row is None:
                return None
            record = replace(_record(row), state=JobState.CANCELLED, finished_at=at)
            await conn.execute(_UPSERT, *_values(record))
            return record

    async def active_jobs(self, user_id: int | None = None, since: float = 0.0) -> list[JobRecord]:
        sql = "SELECT * FROM jobs WHERE state = ANY($1::text[]) AND created_at >= $2"
        args: list[Any] = [_ACTIVE, since]
        if user_id is not None:
            sql += " AND user_id = $3"
            args.append(user_id)
        rows = await self.db.fetch(sql + " ORDER BY created_at, job_id", *args)
        return [_record(r) for r in rows]

    async def history(self, user_id: int, limit: int) -> list[JobRecord]:
        rows = await self.db.fetch(
            "SELECT * FROM jobs WHERE user_id = $1 AND state = $2 "
            "ORDER BY finished_at DESC NULLS LAST, created_at DESC LIMIT $3",
            user_id,
            JobState.DONE.value,
            limit,
        )
        return [_record(r) for r in rows]

    # --- blocked users --------------------------------------------------------------------------
    async def mark_blocked(self, user_id: int, at: float) -> None:
        await self.db.execute(
            "INSERT INTO users (user_id, blocked_at) VALUES ($1, $2) "
            "ON CONFLICT (user_id) DO UPDATE SET blocked_at = COALESCE(users.blocked_at, excluded.blocked_at)",
            user_id,
            at,
        )

    async def unblock(self, user_id: int) -> None:
        await self.db.execute("UPDATE users SET blocked_at = NULL WHERE user_id = $1", user_id)

    async def is_blocked(self, user_id: int) -> bool:
        rows = await self.db.fetch("SELECT 1 FROM users WHERE user_id = $1 AND blocked_at IS NOT NULL", user_id)
        return bool(rows)

    # --- banned users ---------------------------------------------------------------------------
    async def ban(self, user_id: int, at: float) -> bool:
        status = await self.db.execute(
            "INSERT INTO users (user_id, banned_at) VALUES ($1, $2) "
            "ON CONFLICT (user_id) DO UPDATE SET banned_at = excluded.banned_at, ban_noticed_at = NULL "
            "WHERE users.banned_at IS NULL",
            user_id,
            at,
        )
        return changed(status) > 0

    async def unban(self, user_id: int) -> bool:
        status = await self.db.execute(
            "UPDATE users SET banned_at = NULL, ban_noticed_at = NULL WHERE user_id = $1 AND banned_at IS NOT NULL",
            user_id,
        )
        return changed(status) > 0

    async def ban_noticed(self, user_id: int) -> bool:
        status = await self.db.execute(
            "UPDATE users SET ban_noticed_at = extract(epoch from clock_timestamp()) "
            "WHERE user_id = $1 AND banned_at IS NOT NULL AND ban_noticed_at IS NULL",
            user_id,
        )
        return changed(status) > 0

    async def stats(self, since: float) -> StoreStats:
        async with self.db.connection() as conn:
            counts = {
                r["state"]: r["n"]
                for r in await conn.fetch(
                    "SELECT state, COUNT(*) AS n FROM jobs WHERE created_at >= $1 GROUP BY state", since
                )
            }
            active = await conn.fetchval("SELECT COUNT(*) FROM jobs WHERE state = ANY($1::text[])", _ACTIVE)
            users = await conn.fetchval("SELECT COUNT(DISTINCT user_id) FROM jobs WHERE created_at >= $1", since)
            blocked = await conn.fetchval("SELECT COUNT(*) FROM users WHERE blocked_at IS NOT NULL")
            banned = await conn.fetchval("SELECT COUNT(*) FROM users WHERE banned_at IS NOT NULL")
            workers = {
                r["worker_id"]: r["seen"]
                for r in await conn.fetch(
                    "SELECT worker_id, MAX(CASE WHEN state IN ('done', 'failed') THEN finished_at "
                    "ELSE started_at END) AS seen FROM jobs WHERE worker_id != '' "
                    "GROUP BY worker_id HAVING MAX(CASE WHEN state IN ('done', 'failed') THEN finished_at "
                    "ELSE started_at END) >= $1",
                    since,
                )
            }
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
