"""The PostgreSQL schema of the user store and the delivery log, as numbered migrations.

Each migration runs once, in its own transaction, and is recorded in ``schema_version``. All of
them run under one session-level advisory lock, so that several instances starting at once (a
rolling deploy, a scale-out) wait for each other instead of racing: the first applies what is
missing, the others find it applied. Migrations only ever add (tables, columns, indexes), so an
instance of the previous release keeps working against a schema one version newer.

Timestamps are seconds since the epoch (``double precision``), as the domain keeps them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

# pg_advisory_lock key of the migrations: any fixed bigint, the same in every instance.
LOCK_KEY = 0x70327069635F6D67  # "p2pic_mg"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


# The SQL of each migration reads best as written.
# fmt: off
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "users, jobs and deliveries", """
        CREATE TABLE users (
            user_id bigint PRIMARY KEY,
            locale text,
            aspect text,
            quality text NOT NULL DEFAULT 'auto',
            send_as text NOT NULL DEFAULT 'photo',
            blocked_at double precision
        );
        CREATE TABLE jobs (
            job_id text PRIMARY KEY,
            user_id bigint NOT NULL,
            chat_id bigint NOT NULL,
            prompt text NOT NULL,
            negative_prompt text NOT NULL DEFAULT '',
            width integer NOT NULL,
            height integer NOT NULL,
            seed bigint NOT NULL,
            quality text NOT NULL,
            locale text NOT NULL,
            created_at double precision NOT NULL,
            state text NOT NULL,
            status_message_id bigint,
            started_at double precision,
            finished_at double precision,
            image_key text,
            image_url text,
            profile text,
            profile_reason text,
            worker_id text NOT NULL DEFAULT '',
            error_code text,
            total_s double precision NOT NULL DEFAULT 0
        );
        CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
        CREATE INDEX jobs_state_created ON jobs (state, created_at);
        CREATE INDEX jobs_created ON jobs (created_at);
        CREATE INDEX jobs_finished ON jobs (finished_at);
        CREATE TABLE deliveries (
            job_id text PRIMARY KEY,
            claimed_at double precision NOT NULL,
            delivered_at double precision
        );
    """),
    Migration(2, "outbox and delivery leases", """
        ALTER TABLE jobs ADD COLUMN published_at double precision;
        CREATE INDEX jobs_unpublished ON jobs (created_at) WHERE state = 'queued' AND published_at IS NULL;
        ALTER TABLE deliveries ADD COLUMN owner text NOT NULL DEFAULT '';
        ALTER TABLE deliveries ADD COLUMN incarnation text NOT NULL DEFAULT '';
        CREATE INDEX deliveries_claimed ON deliveries (claimed_at);
    """),
    Migration(3, "bot instances and chat pacing", """
        CREATE TABLE bot_instances (
            incarnation text PRIMARY KEY,
            owner text NOT NULL,
            seen_at double precision NOT NULL
        );
        CREATE TABLE chat_pacing (
            chat_id bigint PRIMARY KEY,
            holder text,
            lease_until double precision NOT NULL DEFAULT 0,
            next_at double precision NOT NULL DEFAULT 0
        );
    """),
    Migration(4, "translation preference and bans", """
        ALTER TABLE users ADD COLUMN translate boolean NOT NULL DEFAULT true;
        ALTER TABLE users ADD COLUMN banned_at double precision;
        ALTER TABLE users ADD COLUMN ban_noticed_at double precision;
    """),
    Migration(5, "the message that asked for a job, and its picture's Telegram file id", """
        ALTER TABLE jobs ADD COLUMN request_message_id bigint;
        ALTER TABLE jobs ADD COLUMN file_id text;
    """),
    Migration(6, "the inline message of a job asked for in guest mode", """
        ALTER TABLE jobs ADD COLUMN inline_message_id text;
    """),
    Migration(7, "credits bought with Telegram Stars: balances, payments, the ledger, paid jobs", """
        ALTER TABLE users ADD COLUMN credits integer NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN paid_credit boolean NOT NULL DEFAULT false;
        CREATE TABLE star_payments (
            charge_id text PRIMARY KEY,
            user_id bigint NOT NULL,
            stars integer NOT NULL,
            credits integer NOT NULL,
            payload text NOT NULL,
            paid_at double precision NOT NULL,
            refunded_at double precision,
            credits_taken_back integer NOT NULL DEFAULT 0
        );
        CREATE TABLE credit_ledger (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id bigint NOT NULL,
            kind text NOT NULL,
            credits integer NOT NULL,
            stars integer NOT NULL DEFAULT 0,
            charge_id text,
            job_id text,
            at double precision NOT NULL
        );
        CREATE INDEX credit_ledger_user ON credit_ledger (user_id, id);
        CREATE UNIQUE INDEX credit_ledger_job ON credit_ledger (job_id, kind) WHERE job_id IS NOT NULL;
    """),
    Migration(8, "the lane of a job (priority by recent use, the daily allowance)", """
        ALTER TABLE jobs ADD COLUMN lane text NOT NULL DEFAULT 'priority';
    """),
)
# fmt: on

LATEST = MIGRATIONS[-1].version


async def current_version(conn: asyncpg.Connection) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def migrate(conn: asyncpg.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations the database lacks; the versions applied (by this call)."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        have = await current_version(conn)
        newest = migrations[-1].version if migrations else 0
        if have > newest:
            log.warning(
                "the database schema is at version %d, newer than this release's %d "
                "(a newer release migrated it; migrations only add, so this one keeps working)",
                have,
                newest,
            )
        for m in migrations:
            if m.version <= have:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.version, m.name)
            applied.append(m.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied
