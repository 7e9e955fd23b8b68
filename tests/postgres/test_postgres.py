"""What only the PostgreSQL adapters show: versioned migrations (from an empty database, from the
previous version, several instances starting at once), the password kept apart from the URL, and
an unreachable server (readiness false, one clear line, recovery when it returns). Their contract
suites are in tests/contract/test_user_store_contract.py."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import pytest

from adapters.postgres import DatabaseUnavailable, PostgresDatabase, PostgresDeliveryLog, PostgresUserStore
from adapters.postgres.migrations import LATEST, MIGRATIONS, migrate
from domain.models import Lane
from domain.ports import Claim
from domain.users import UserLimits, UserPrefs
from tests.contract.test_user_store_contract import NOW, record
from tests.fixtures.postgres import PASSWORD

pytestmark = pytest.mark.postgres


async def versions(url: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(url)
    try:
        return [
            (r["version"], r["name"])
            for r in await conn.fetch("SELECT version, name FROM schema_version ORDER BY version")
        ]
    finally:
        await conn.close()


async def wait_for(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.1)
    return check()


async def test_migrations_from_an_empty_database(postgres_url):
    store = PostgresUserStore(PostgresDatabase(postgres_url))
    await store.start()
    try:
        assert await versions(postgres_url) == [(m.version, m.name) for m in MIGRATIONS]
        assert LATEST == 8
        await store.admit([record("e1")], UserLimits(), NOW)
        assert [r.job_id for r in await store.unpublished(NOW + 1)] == ["e1"]
    finally:
        await store.stop()
    again = PostgresDatabase(postgres_url)  # a second start applies nothing
    await again.start()
    await again.stop()
    assert len(await versions(postgres_url)) == len(MIGRATIONS)


async def test_migration_from_the_previous_version_keeps_the_data(postgres_url):
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await migrate(conn, MIGRATIONS[:1]) == [1]  # the first version's schema
        await conn.execute(
            "INSERT INTO jobs (job_id, user_id, chat_id, prompt, width, height, seed, quality, locale,"
            " created_at, state) VALUES ('old', 1, 1, 'a fox', 512, 512, 3, 'auto', 'en', $1, 'queued')",
            NOW,
        )
        await conn.execute("INSERT INTO deliveries VALUES ('gone', 1.0, NULL), ('sent', 1.0, 2.0)")
        await conn.execute("INSERT INTO users (user_id, locale, aspect) VALUES (4, 'ru', '3:2')")
    finally:
        await conn.close()
    db = PostgresDatabase(postgres_url)
    store, log = PostgresUserStore(db), PostgresDeliveryLog(db, keep_s=1e12, lease_s=60)
    await store.start()
    await log.start()
    try:
        assert [v for v, _ in await versions(postgres_url)] == [m.version for m in MIGRATIONS]
        [old] = await store.unpublished(NOW + 1)
        assert old.job_id == "old"  # republished after the upgrade
        assert old.lane == Lane.PRIORITY  # a job from before the lanes: priority, as it went then
        assert (await store.get_prefs(4)).aspect == "3:2"
        assert await log.claim("gone") == Claim.TAKEN  # an old unconfirmed claim, long expired
        assert await log.claim("sent") == Claim.DELIVERED
    finally:
        await log.stop()
        await store.stop()


async def test_instances_starting_at_once_apply_each_migration_once(postgres_url):
    dbs = [PostgresDatabase(postgres_url, min_size=1, max_size=2) for _ in range(6)]
    await asyncio.gather(*(db.start() for db in dbs))
    try:
        assert all(db.is_ready() for db in dbs)
        assert [v for v, _ in await versions(postgres_url)] == [m.version for m in MIGRATIONS]
        stores = [PostgresUserStore(db) for db in dbs]
        outcomes = await asyncio.gather(
            *(
                s.admit([record(f"m{i}")], UserLimits(max_in_flight=3, per_minute=0), NOW)
                for i, s in enumerate(stores * 3)
            ),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 3  # one user's cap across six instances
    finally:
        await asyncio.gather(*(db.stop() for db in dbs))


async def test_password_apart_from_the_url(postgres_url):
    bare = postgres_url.replace(f":{PASSWORD}@", "@")
    assert PASSWORD not in bare
    store = PostgresUserStore(PostgresDatabase(bare, password=PASSWORD))
    await store.start()
    try:
        assert store.is_ready()
        await store.save_prefs(UserPrefs(3, aspect="16:9"))
        assert (await store.get_prefs(3)).aspect == "16:9"
    finally:
        await store.stop()


async def test_wrong_password_is_one_clear_line_and_not_ready(postgres_url, caplog):
    wrong = "not-the-password-91c2"
    db = PostgresDatabase(postgres_url.replace(f":{PASSWORD}@", "@"), password=wrong, wait_s=0.5)
    caplog.set_level(logging.DEBUG, logger="adapters.postgres")
    await db.start()
    try:
        assert not db.is_ready()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        line = errors[0].getMessage()
        assert "refused the login" in line and "password authentication failed" in line and "\n" not in line
        with pytest.raises(DatabaseUnavailable):
            await PostgresUserStore(db).get_prefs(1)
        await asyncio.sleep(1.2)  # a retry in the background
        assert not db.is_ready()
    finally:
        await db.stop()
    text = caplog.text
    assert wrong not in text and PASSWORD not in text


async def test_outage_makes_it_unready_and_it_recovers(restartable_postgres, caplog):
    caplog.set_level(logging.INFO, logger="adapters.postgres")
    server = restartable_postgres
    db = PostgresDatabase(server.url(), health_interval_s=0.2, wait_s=1.0, connect_timeout_s=1.0)
    store = PostgresUserStore(db)
    await store.start()
    try:
        await store.admit([record("before")], UserLimits(), NOW)
        await asyncio.to_thread(server.stop)
        assert await wait_for(lambda: not store.is_ready(), 10)
        with pytest.raises(DatabaseUnavailable):
            await store.get_job("before")
        down = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(down) == 1 and "unreachable" in down[0] and "not ready" in down[0]
        await asyncio.to_thread(server.start)
        assert await wait_for(store.is_ready, 15)
        assert (await store.get_job("before")).prompt == "prompt before"  # the pool reconnected
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await store.stop()
    assert PASSWORD not in caplog.text


async def test_start_while_unreachable_then_it_comes(restartable_postgres, caplog):
    caplog.set_level(logging.INFO, logger="adapters.postgres")
    server = restartable_postgres
    await asyncio.to_thread(server.stop)
    db = PostgresDatabase(server.url(), wait_s=0.3, connect_timeout_s=1.0)
    store = PostgresUserStore(db)
    await store.start()  # returns: readiness false, retrying in the background
    try:
        assert not store.is_ready()
        with pytest.raises(DatabaseUnavailable):
            await store.get_prefs(1)
        await asyncio.to_thread(server.start)
        assert await wait_for(store.is_ready, 20)
        await store.admit([record("late")], UserLimits(), NOW)  # migrated once it came
        assert (await store.get_job("late")) is not None
    finally:
        await store.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unreachable" in errors[0]
    assert PASSWORD not in caplog.text


async def test_the_composition_root_builds_the_shared_store_from_settings(postgres_url, caplog):
    from app import secrets_of
    from config.factories import COORDINATION_POOL, user_stores
    from config.logging import SecretRedactor
    from config.settings import Settings

    settings = Settings(
        _env_file=None, user_store="postgres", database_url=postgres_url, database_pool_max=3, worker_id="bot-7"
    )
    stores = user_stores(settings)
    store, log = stores.store, stores.delivery_log
    assert isinstance(store, PostgresUserStore) and isinstance(log, PostgresDeliveryLog)
    assert store.db is log.db and store.db.max_size == 3 and log.owner == "bot-7"
    # the shared send budget, on a small pool of its own (a busy store cannot delay its heartbeats)
    assert stores.coordination is not None and stores.coordination.db is not store.db
    assert stores.coordination.db.dsn == store.db.dsn and stores.coordination.db.max_size == COORDINATION_POOL
    assert stores.is_ready == store.is_ready
    await store.start()
    await log.start()
    try:
        assert store.is_ready()
        assert await log.claim("r1") == Claim.TAKEN
    finally:
        await log.stop()
        await store.stop()
    # the password inside DATABASE_URL is scrubbed from logs like any secret setting
    redactor = SecretRedactor(secrets_of(settings))
    line = logging.LogRecord("x", logging.ERROR, "", 0, "connect failed: password %s", (PASSWORD,), None)
    redactor.filter(line)
    assert PASSWORD not in line.getMessage()
    with pytest.raises(ValueError, match="USER_STORE=postgres needs DATABASE_URL"):
        Settings(_env_file=None, user_store="postgres")


async def test_a_pool_with_every_connection_in_use_is_busy_not_down(postgres_url, caplog):
    """A burst of updates holds every pooled connection: the next caller waits for one (for as
    long as a command may take), and a wait that runs out is not taken for an outage."""
    caplog.set_level(logging.INFO, logger="adapters.postgres")
    db = PostgresDatabase(postgres_url, min_size=1, max_size=1, wait_s=0.2, command_timeout_s=0.5)
    await db.start()
    try:
        async with db.connection() as held:
            waiter = asyncio.create_task(db.fetch("SELECT 41 + 1 AS v"))
            await asyncio.sleep(0.2)
            assert not waiter.done()  # waiting for the connection, not failed
        assert (await waiter)[0]["v"] == 42  # it got the connection once it was free
        async with db.connection() as held:
            began = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match="busy"):
                await db.fetch("SELECT 1")
            assert time.monotonic() - began >= 0.45  # waited command_timeout_s, not wait_s
            assert await held.fetchval("SELECT 1") == 1
        assert db.is_ready()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await db.stop()
