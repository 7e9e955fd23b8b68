"""Operations on the bots' PostgreSQL database, tried as docs/deploy.md and deploy-kubernetes.md
describe them: a backup with pg_dump restored by pg_restore into a fresh cluster, read by the app's
own user store; and a rollback: this release's code on a schema that a newer release migrated
(migrations only add, so an older release runs on a newer schema)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess

import asyncpg
import pytest

from adapters.postgres import PostgresDatabase, PostgresDeliveryLog, PostgresUserStore
from adapters.postgres.migrations import LATEST, MIGRATIONS, Migration, migrate
from domain.models import Locale, Quality
from domain.ports import Claim
from domain.users import UserLimits, UserPrefs
from tests.contract.test_user_store_contract import NOW, record
from tests.fixtures.postgres import create_database

pytestmark = pytest.mark.postgres

# The documented commands (docs/deploy.md, section 11): a custom-format dump without owners, and
# a restore that stops at the first error.
DUMP = ["--format=custom", "--no-owner"]
RESTORE = ["--no-owner", "--exit-on-error"]


def client(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: apt-get install postgresql-client (Debian's postgresql has it)"
    return found


async def fill(url: str) -> None:
    """What a live bot leaves in its database: prefs, a ban, jobs queued and finished, claims."""
    db = PostgresDatabase(url, min_size=1, max_size=3)
    store, log = PostgresUserStore(db), PostgresDeliveryLog(db, keep_s=1e12, lease_s=60)
    await store.start()
    await log.start()
    try:
        await store.save_prefs(UserPrefs(user_id=1, locale=Locale.RU, aspect="16:9", quality=Quality.FAST))
        await store.ban(666, NOW)
        await store.admit([record("queued-1"), record("sent-1", created_at=NOW - 10)], UserLimits(), NOW)
        await store.mark_published("sent-1", NOW - 9)
        assert await log.claim("sent-1") == Claim.TAKEN
        await log.confirm("sent-1")
    finally:
        await log.stop()
        await store.stop()


async def check_as_the_app(url: str) -> None:
    db = PostgresDatabase(url, min_size=1, max_size=3)
    store, log = PostgresUserStore(db), PostgresDeliveryLog(db, keep_s=1e12, lease_s=60)
    await store.start()
    await log.start()
    try:
        prefs = await store.get_prefs(1)
        assert (prefs.locale, prefs.aspect, prefs.quality) == (Locale.RU, "16:9", Quality.FAST)
        assert (await store.get_prefs(666)).banned
        assert [r.job_id for r in await store.unpublished(NOW + 1)] == ["queued-1"]  # the outbox
        assert await log.claim("sent-1") == Claim.DELIVERED  # never sent twice after a restore
        for job_id in ("queued-1", "sent-1"):
            job = await store.get_job(job_id)
            assert job is not None and job.prompt == f"prompt {job_id}"
        assert "queued-1" in [r.job_id for r in await store.active_jobs(1)]
        await store.admit([record("after-1")], UserLimits(), NOW + 5)  # and it goes on writing
        assert (await store.get_job("after-1")) is not None
    finally:
        await log.stop()
        await store.stop()


async def test_a_dump_restored_into_a_fresh_cluster_is_read_by_the_user_store(
    postgres_url, restartable_postgres, tmp_path
):
    await fill(postgres_url)
    dump = tmp_path / "p2p.dump"
    done = await asyncio.to_thread(
        subprocess.run,
        [client("pg_dump"), *DUMP, f"--dbname={postgres_url}", f"--file={dump}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert dump.stat().st_size > 0

    # Another server (a new VM, a new managed instance): an empty database, then pg_restore.
    fresh = await create_database(restartable_postgres.url(), "restored")
    done = await asyncio.to_thread(
        subprocess.run,
        [client("pg_restore"), *RESTORE, f"--dbname={fresh}", str(dump)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    conn = await asyncpg.connect(fresh)
    try:
        assert await conn.fetchval("SELECT MAX(version) FROM schema_version") == LATEST
    finally:
        await conn.close()
    await check_as_the_app(fresh)


# What a newer release might add: a column with a default, a nullable one, a table of its own.
NEWER = Migration(
    LATEST + 1,
    "a newer release's additions",
    """
    ALTER TABLE users ADD COLUMN style text NOT NULL DEFAULT 'none';
    ALTER TABLE jobs ADD COLUMN upscaled_key text;
    ALTER TABLE deliveries ADD COLUMN attempts integer NOT NULL DEFAULT 0;
    CREATE TABLE albums (album_id text PRIMARY KEY, user_id bigint NOT NULL, created_at double precision NOT NULL);
""",
)


async def test_this_release_runs_on_a_schema_a_newer_release_migrated(postgres_url, caplog):
    """`helm rollback` / the previous compose image after an upgrade that migrated the database:
    the older code starts (one warning, nothing applied, nothing dropped) and reads and writes
    everything, including rows the newer release wrote."""
    await fill(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await migrate(conn, (*MIGRATIONS, NEWER)) == [NEWER.version]
        await conn.execute("UPDATE users SET style = 'ink' WHERE user_id = 1")
        await conn.execute("INSERT INTO albums VALUES ('a1', 1, $1)", NOW)
    finally:
        await conn.close()
    with caplog.at_level(logging.WARNING, logger="adapters.postgres.migrations"):
        await check_as_the_app(postgres_url)
    assert any(f"version {NEWER.version}, newer than this release's {LATEST}" in r.getMessage() for r in caplog.records)
    conn = await asyncpg.connect(postgres_url)
    try:  # the newer release's data is intact for when it is rolled forward again
        assert await conn.fetchval("SELECT style FROM users WHERE user_id = 1") == "ink"
        assert await conn.fetchval("SELECT COUNT(*) FROM albums") == 1
        assert await conn.fetchval("SELECT MAX(version) FROM schema_version") == NEWER.version
    finally:
        await conn.close()
