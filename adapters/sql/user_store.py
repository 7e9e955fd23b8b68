"""The user store's SQL, written once for SQLite and PostgreSQL: the two stores run the same
statements wherever the dialects agree (SQLite 3.30+ knows ``NULLS LAST`` and upserts; both know
``IN`` lists). Statements use SQLite's ``?`` placeholders; ``numbered`` turns them into
PostgreSQL's ``$1, $2, ...``. What stays dialect-specific lives in each adapter: the row lock
(``FOR UPDATE``, PostgreSQL only) and the clock that notes a ban was seen.
"""

from __future__ import annotations

import re
from typing import Any

from domain.credits import LedgerEntry, LedgerKind, StarPayment
from domain.users import ACTIVE_STATES, JOB_COLUMNS, PREFS_COLUMNS, JobState, Row

ACTIVE = tuple(s.value for s in ACTIVE_STATES)


def marks(n: int) -> str:
    """``n`` placeholders for an ``IN`` list."""
    return ", ".join("?" * n)


def numbered(sql: str) -> str:
    """``sql`` with PostgreSQL's numbered placeholders: the n-th ``?`` becomes ``$n`` (the
    statements here hold no ``?`` inside string literals)."""
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


_COLUMNS = ", ".join(JOB_COLUMNS)
_ACTIVE_IN = f"state IN ({marks(len(ACTIVE))})"

# --- preferences --------------------------------------------------------------------------------
GET_PREFS = f"SELECT {PREFS_COLUMNS} FROM users WHERE user_id = ?"
SAVE_PREFS = (
    "INSERT INTO users (user_id, locale, aspect, quality, send_as, translate) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET locale = excluded.locale, aspect = excluded.aspect, "
    "quality = excluded.quality, send_as = excluded.send_as, translate = excluded.translate"
)

# --- jobs ---------------------------------------------------------------------------------------
# A new job (admit: the ones not known yet), and a job written again whole (finish, cancel).
INSERT_NEW_JOB = f"INSERT INTO jobs ({_COLUMNS}) VALUES ({marks(len(JOB_COLUMNS))}) ON CONFLICT (job_id) DO NOTHING"
UPSERT_JOB = (
    f"INSERT INTO jobs ({_COLUMNS}) VALUES ({marks(len(JOB_COLUMNS))}) ON CONFLICT (job_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in JOB_COLUMNS if c != "job_id")
)


def known_jobs(n: int) -> str:
    """The ids among ``n`` given job ids that the store has already."""
    return f"SELECT job_id FROM jobs WHERE job_id IN ({marks(n)})"


ACTIVE_CREATED = f"SELECT created_at FROM jobs WHERE user_id = ? AND {_ACTIVE_IN}"  # user_id, *ACTIVE
RECENT_CREATED = "SELECT created_at FROM jobs WHERE user_id = ? AND created_at > ?"
GET_JOB = "SELECT * FROM jobs WHERE job_id = ?"
SET_STATUS_MESSAGE = "UPDATE jobs SET status_message_id = ? WHERE job_id = ?"
SET_FILE_ID = "UPDATE jobs SET file_id = ? WHERE job_id = ?"
SET_INLINE_MESSAGE = "UPDATE jobs SET inline_message_id = ? WHERE job_id = ?"
MARK_PUBLISHED = "UPDATE jobs SET published_at = ? WHERE job_id = ? AND published_at IS NULL"
UNPUBLISHED = (
    "SELECT * FROM jobs WHERE state = ? AND published_at IS NULL AND created_at < ? ORDER BY created_at, job_id"
)
MARK_STARTED = "UPDATE jobs SET state = ?, started_at = ?, worker_id = ? WHERE job_id = ? AND state = ?"
ACTIVE_OF_USER = f"SELECT * FROM jobs WHERE job_id = ? AND user_id = ? AND {_ACTIVE_IN}"  # job, user, *ACTIVE
ACTIVE_SINCE = f"SELECT * FROM jobs WHERE {_ACTIVE_IN} AND created_at >= ?"  # *ACTIVE, since [, user_id]
AND_USER = " AND user_id = ?"
BY_AGE = " ORDER BY created_at, job_id"
HISTORY = (
    "SELECT * FROM jobs WHERE user_id = ? AND state = ? ORDER BY finished_at DESC NULLS LAST, created_at DESC LIMIT ?"
)

# --- usage (lanes and the daily allowance: ``domain.lanes``) -------------------------------------
# A user's pictures queued, running or made (failed and cancelled ones do not count): in the
# sliding window (any lane), and in the priority lane since the allowance day began.
# Parameters: recent_since, day_since, priority, user_id, earliest of the two, *COUNTED.
COUNTED = (JobState.QUEUED.value, JobState.RUNNING.value, JobState.DONE.value)
USAGE = (
    "SELECT COALESCE(SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END), 0) AS recent, "
    "COALESCE(SUM(CASE WHEN created_at >= ? AND lane = ? THEN 1 ELSE 0 END), 0) AS priority_today "
    f"FROM jobs WHERE user_id = ? AND created_at >= ? AND state IN ({marks(len(COUNTED))})"
)

# --- blocked and banned users -------------------------------------------------------------------
MARK_BLOCKED = (
    "INSERT INTO users (user_id, blocked_at) VALUES (?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET blocked_at = COALESCE(users.blocked_at, excluded.blocked_at)"
)
UNBLOCK = "UPDATE users SET blocked_at = NULL WHERE user_id = ?"
IS_BLOCKED = "SELECT 1 FROM users WHERE user_id = ? AND blocked_at IS NOT NULL"
BAN = (
    "INSERT INTO users (user_id, banned_at) VALUES (?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET banned_at = excluded.banned_at, ban_noticed_at = NULL "
    "WHERE users.banned_at IS NULL"
)
UNBAN = "UPDATE users SET banned_at = NULL, ban_noticed_at = NULL WHERE user_id = ? AND banned_at IS NOT NULL"

# --- the statistics -----------------------------------------------------------------------------
STATE_COUNTS = "SELECT state, COUNT(*) AS n FROM jobs WHERE created_at >= ? GROUP BY state"
ACTIVE_COUNT = f"SELECT COUNT(*) FROM jobs WHERE {_ACTIVE_IN}"  # *ACTIVE
USERS_SINCE = "SELECT COUNT(DISTINCT user_id) FROM jobs WHERE created_at >= ?"
BLOCKED_COUNT = "SELECT COUNT(*) FROM users WHERE blocked_at IS NOT NULL"
BANNED_COUNT = "SELECT COUNT(*) FROM users WHERE banned_at IS NOT NULL"
_SEEN = "MAX(CASE WHEN state IN ('done', 'failed') THEN finished_at ELSE started_at END)"
# Each worker and when it was last seen working (PostgreSQL allows no alias in HAVING).
WORKERS_SEEN = (
    f"SELECT worker_id, {_SEEN} AS seen FROM jobs WHERE worker_id != '' GROUP BY worker_id HAVING {_SEEN} >= ?"
)

QUEUED = JobState.QUEUED.value
RUNNING = JobState.RUNNING.value
DONE = JobState.DONE.value

# --- credits bought with Telegram Stars (``domain.credits``) ------------------------------------
PAYMENT_COLUMNS = "charge_id, user_id, stars, credits, payload, paid_at, refunded_at, credits_taken_back"
INSERT_PAYMENT = (
    "INSERT INTO star_payments (charge_id, user_id, stars, credits, payload, paid_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (charge_id) DO NOTHING"
)
GET_PAYMENT = f"SELECT {PAYMENT_COLUMNS} FROM star_payments WHERE charge_id = ?"
MARK_REFUNDED = (
    "UPDATE star_payments SET refunded_at = ?, credits_taken_back = ? WHERE charge_id = ? AND refunded_at IS NULL"
)
ADD_CREDITS = (
    "INSERT INTO users (user_id, credits) VALUES (?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET credits = users.credits + excluded.credits"
)
GET_CREDITS = "SELECT credits FROM users WHERE user_id = ?"
TAKE_ONE_CREDIT = "UPDATE users SET credits = credits - 1 WHERE user_id = ? AND credits > 0"
TAKE_CREDITS = "UPDATE users SET credits = credits - ? WHERE user_id = ? AND credits >= ?"
JOB_PAYMENT = "SELECT user_id, paid_credit, state FROM jobs WHERE job_id = ?"
MARK_PAID = "UPDATE jobs SET paid_credit = ? WHERE job_id = ?"
LEDGER_COLUMNS = "user_id, kind, credits, stars, charge_id, job_id, at"
ADD_LEDGER = f"INSERT INTO credit_ledger ({LEDGER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
LEDGER_OF = f"SELECT {LEDGER_COLUMNS} FROM credit_ledger WHERE user_id = ? ORDER BY id"
# A job's credit comes back once (the unique index on (job_id, kind) holds it too), and never
# once a refund kept it (``LedgerKind.KEPT``).
GIVEN_BACK = "SELECT 1 FROM credit_ledger WHERE job_id = ? AND kind IN (?, ?)"
NOT_BACK = (LedgerKind.GIVE_BACK.value, LedgerKind.KEPT.value)
# The user's paid jobs in flight whose credit could still come back, newest first (a refund keeps
# that many): user_id, True, *ACTIVE, *NOT_BACK, limit.
PAID_IN_FLIGHT = (
    f"SELECT job_id FROM jobs WHERE user_id = ? AND paid_credit = ? AND {_ACTIVE_IN} AND job_id NOT IN "
    "(SELECT job_id FROM credit_ledger WHERE job_id IS NOT NULL AND kind IN (?, ?)) "
    "ORDER BY created_at DESC, job_id LIMIT ?"
)


def kept_rows(user_id: int, job_ids: list[str], charge_id: str, at: float) -> list[tuple[Any, ...]]:
    """The ``kept`` ledger rows of a refund that found too few credits left."""
    return [
        ledger_row(LedgerEntry(user_id, LedgerKind.KEPT, 0, at, charge_id=charge_id, job_id=job_id))
        for job_id in job_ids
    ]


def payment(row: Row) -> StarPayment:
    """A ``star_payments`` row (``PAYMENT_COLUMNS``) as the domain's payment."""
    return StarPayment(
        charge_id=row["charge_id"],
        user_id=int(row["user_id"]),
        stars=int(row["stars"]),
        credits=int(row["credits"]),
        payload=row["payload"],
        paid_at=float(row["paid_at"]),
        refunded_at=row["refunded_at"],
        credits_taken_back=int(row["credits_taken_back"]),
    )


def ledger_entry(row: Row) -> LedgerEntry:
    return LedgerEntry(
        user_id=int(row["user_id"]),
        kind=LedgerKind(row["kind"]),
        credits=int(row["credits"]),
        at=float(row["at"]),
        stars=int(row["stars"]),
        charge_id=row["charge_id"],
        job_id=row["job_id"],
    )


def ledger_row(entry: LedgerEntry) -> tuple[Any, ...]:
    """The entry as ``ADD_LEDGER``'s parameters."""
    return (entry.user_id, entry.kind.value, entry.credits, entry.stars, entry.charge_id, entry.job_id, entry.at)
