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

from adapters.postgres.credits import PostgresCredits
from adapters.postgres.db import PostgresDatabase, changed
from adapters.sql import user_store as sql
from adapters.sql.user_store import numbered
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


def _record(row: asyncpg.Record) -> JobRecord:
    return JobRecord.from_row(row)


# The shared statements (adapters/sql/user_store.py) with PostgreSQL's placeholders.
_GET_PREFS = numbered(sql.GET_PREFS)
_SAVE_PREFS = numbered(sql.SAVE_PREFS)
_INSERT_NEW_JOB = numbered(sql.INSERT_NEW_JOB)
_UPSERT_JOB = numbered(sql.UPSERT_JOB)
_ACTIVE_CREATED = numbered(sql.ACTIVE_CREATED)
_RECENT_CREATED = numbered(sql.RECENT_CREATED)
_GET_JOB = numbered(sql.GET_JOB)
_SET_STATUS_MESSAGE = numbered(sql.SET_STATUS_MESSAGE)
_SET_FILE_ID = numbered(sql.SET_FILE_ID)
_SET_INLINE_MESSAGE = numbered(sql.SET_INLINE_MESSAGE)
_MARK_PUBLISHED = numbered(sql.MARK_PUBLISHED)
_UNPUBLISHED = numbered(sql.UNPUBLISHED)
_MARK_STARTED = numbered(sql.MARK_STARTED)
_ACTIVE_OF_USER = numbered(sql.ACTIVE_OF_USER)
_HISTORY = numbered(sql.HISTORY)
_MARK_BLOCKED = numbered(sql.MARK_BLOCKED)
_UNBLOCK = numbered(sql.UNBLOCK)
_IS_BLOCKED = numbered(sql.IS_BLOCKED)
_BAN = numbered(sql.BAN)
_UNBAN = numbered(sql.UNBAN)
_STATE_COUNTS = numbered(sql.STATE_COUNTS)
_ACTIVE_COUNT = numbered(sql.ACTIVE_COUNT)
_USERS_SINCE = numbered(sql.USERS_SINCE)
_WORKERS_SEEN = numbered(sql.WORKERS_SEEN)
_USAGE = numbered(sql.USAGE)


class PostgresUserStore(PostgresCredits):
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
        rows = await self.db.fetch(_GET_PREFS, user_id)
        return UserPrefs.from_row(user_id, rows[0]) if rows else UserPrefs(user_id)

    async def save_prefs(self, prefs: UserPrefs) -> None:
        await self.db.execute(
            _SAVE_PREFS,
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
                for r in await conn.fetch(numbered(sql.known_jobs(len(records))), *(r.job_id for r in records))
            }
            if len(known) == len(records):
                raise AlreadyAccepted(job_id=records[0].job_id)
            new = [r for r in records if r.job_id not in known]
            active = [r["created_at"] for r in await conn.fetch(_ACTIVE_CREATED, user_id, *sql.ACTIVE)]
            recent = [r["created_at"] for r in await conn.fetch(_RECENT_CREATED, user_id, now - limits.window_s)]
            check_admission(limits, now=now, active_created=active, recent_created=recent, requested=len(new))
            await conn.executemany(_INSERT_NEW_JOB, [r.row() for r in new])

    async def usage(self, user_id: int, *, recent_since: float, day_since: float) -> Usage:
        earliest = min(recent_since, day_since)
        [row] = await self.db.fetch(
            _USAGE, recent_since, day_since, Lane.PRIORITY.value, user_id, earliest, *sql.COUNTED
        )
        return Usage(recent=int(row["recent"]), priority_today=int(row["priority_today"]))

    async def get_job(self, job_id: str) -> JobRecord | None:
        rows = await self.db.fetch(_GET_JOB, job_id)
        return _record(rows[0]) if rows else None

    async def set_status_message(self, job_id: str, message_id: int) -> None:
        await self.db.execute(_SET_STATUS_MESSAGE, message_id, job_id)

    async def set_inline_message(self, job_id: str, inline_message_id: str) -> None:
        await self.db.execute(_SET_INLINE_MESSAGE, inline_message_id, job_id)

    async def set_file_id(self, job_id: str, file_id: str) -> None:
        await self.db.execute(_SET_FILE_ID, file_id, job_id)

    async def mark_published(self, job_id: str, at: float) -> None:
        await self.db.execute(_MARK_PUBLISHED, at, job_id)

    async def unpublished(self, created_before: float) -> list[JobRecord]:
        rows = await self.db.fetch(_UNPUBLISHED, sql.QUEUED, created_before)
        return [_record(r) for r in rows]

    async def mark_started(self, job_id: str, at: float, worker_id: str) -> JobRecord | None:
        async with self.db.connection() as conn:
            await conn.execute(_MARK_STARTED, sql.RUNNING, at, worker_id, job_id, sql.QUEUED)
            row = await conn.fetchrow(_GET_JOB, job_id)
        return _record(row) if row else None

    async def finish(self, job_id: str, outcome: Outcome) -> JobRecord | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(_GET_JOB + " FOR UPDATE", job_id)
            if row is None:
                return None
            record = apply_outcome(_record(row), outcome)
            await conn.execute(_UPSERT_JOB, *record.row())
            return record

    async def cancel(self, job_id: str, user_id: int, at: float) -> JobRecord | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(_ACTIVE_OF_USER + " FOR UPDATE", job_id, user_id, *sql.ACTIVE)
            if row is None:
                return None
            record = replace(_record(row), state=JobState.CANCELLED, finished_at=at)
            await conn.execute(_UPSERT_JOB, *record.row())
            return record

    async def active_jobs(self, user_id: int | None = None, since: float = 0.0) -> list[JobRecord]:
        query = sql.ACTIVE_SINCE
        args: list[Any] = [*sql.ACTIVE, since]
        if user_id is not None:
            query += sql.AND_USER
            args.append(user_id)
        rows = await self.db.fetch(numbered(query + sql.BY_AGE), *args)
        return [_record(r) for r in rows]

    async def history(self, user_id: int, limit: int) -> list[JobRecord]:
        rows = await self.db.fetch(_HISTORY, user_id, sql.DONE, limit)
        return [_record(r) for r in rows]

    # --- blocked users --------------------------------------------------------------------------
    async def mark_blocked(self, user_id: int, at: float) -> None:
        await self.db.execute(_MARK_BLOCKED, user_id, at)

    async def unblock(self, user_id: int) -> None:
        await self.db.execute(_UNBLOCK, user_id)

    async def is_blocked(self, user_id: int) -> bool:
        rows = await self.db.fetch(_IS_BLOCKED, user_id)
        return bool(rows)

    # --- banned users ---------------------------------------------------------------------------
    async def ban(self, user_id: int, at: float) -> bool:
        status = await self.db.execute(_BAN, user_id, at)
        return changed(status) > 0

    async def unban(self, user_id: int) -> bool:
        status = await self.db.execute(_UNBAN, user_id)
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
            counts = {r["state"]: r["n"] for r in await conn.fetch(_STATE_COUNTS, since)}
            active = await conn.fetchval(_ACTIVE_COUNT, *sql.ACTIVE)
            users = await conn.fetchval(_USERS_SINCE, since)
            blocked = await conn.fetchval(sql.BLOCKED_COUNT)
            banned = await conn.fetchval(sql.BANNED_COUNT)
            workers = {r["worker_id"]: r["seen"] for r in await conn.fetch(_WORKERS_SEEN, since)}
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
