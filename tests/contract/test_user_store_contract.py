"""The user store's contract, run against every adapter (memory, SQLite, PostgreSQL), plus the
delivery log's and what only a durable store can show (a restart, two processes sharing the file,
a claim taken over after its lease). PostgreSQL's own (migrations, an outage) are in
``tests/postgres``."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from adapters.embedded.delivery_log import MemoryDeliveryLog
from adapters.sqlite.delivery_log import SqliteDeliveryLog
from adapters.sqlite.user_store import SCHEMA, SqliteUserStore, database
from domain.errors import RateLimited, TooManyJobsInFlight
from domain.models import Lane, Locale, Quality
from domain.ports import Claim
from domain.users import (
    JobRecord,
    JobState,
    Outcome,
    SendAs,
    UserLimits,
    UserPrefs,
)
from tests.fixtures.postgres import postgres_db

NOW = 1_700_000_000.0


def record(job_id: str, user_id: int = 1, created_at: float = NOW, **extra) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        user_id=user_id,
        chat_id=user_id,
        prompt=f"prompt {job_id}",
        negative_prompt="",
        width=512,
        height=512,
        seed=7,
        quality=Quality.AUTO,
        locale=Locale.EN,
        created_at=created_at,
        **extra,
    )


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def delivery_log(request, tmp_path):
    if request.param == "memory":
        yield MemoryDeliveryLog()
        return
    if request.param == "sqlite":
        log = SqliteDeliveryLog(tmp_path / "deliveries.db")
    else:
        from adapters.postgres import PostgresDeliveryLog

        log = PostgresDeliveryLog(postgres_db(request.getfixturevalue("postgres_url")))
    await log.start()
    yield log
    await log.stop()


def durable_logs(kind: str, where, lease_s: float, owners: tuple[str, ...]):
    """Delivery logs of separate instances sharing one database (each with its own connections,
    as separate processes have)."""
    if kind == "sqlite":
        return [SqliteDeliveryLog(database(where), lease_s=lease_s, owner=o) for o in owners]
    from adapters.postgres import PostgresDeliveryLog

    return [PostgresDeliveryLog(postgres_db(where), lease_s=lease_s, owner=o) for o in owners]


def durable_stores(kind: str, where, count: int):
    if kind == "sqlite":
        return [SqliteUserStore(where) for _ in range(count)]
    from adapters.postgres import PostgresUserStore

    return [PostgresUserStore(postgres_db(where)) for _ in range(count)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_db(request, tmp_path):
    """(kind, where): a database that several instances open, SQLite's file or a PostgreSQL DSN."""
    if request.param == "sqlite":
        return "sqlite", tmp_path / "shared.db"
    return "postgres", request.getfixturevalue("postgres_url")


async def test_prefs_default_then_saved(store):
    assert await store.get_prefs(5) == UserPrefs(5)
    prefs = UserPrefs(5, locale=Locale.RU, aspect="16:9", quality=Quality.FAST, send_as=SendAs.DOCUMENT)
    await store.save_prefs(prefs)
    assert await store.get_prefs(5) == prefs
    await store.save_prefs(UserPrefs(5, locale=None))
    assert await store.get_prefs(5) == UserPrefs(5)
    await store.save_prefs(UserPrefs(5, translate=False))
    assert (await store.get_prefs(5)).translate is False
    await store.mark_blocked(5, NOW)  # state beside the prefs leaves them alone
    assert (await store.get_prefs(5)).translate is False


async def test_sqlite_upgrades_a_database_written_before_the_translation_setting(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)  # the users table as the first release made it
    old.execute(
        "CREATE TABLE users (user_id INTEGER PRIMARY KEY, locale TEXT, aspect TEXT, "
        "quality TEXT NOT NULL DEFAULT 'auto', send_as TEXT NOT NULL DEFAULT 'photo', blocked_at REAL)"
    )
    old.execute("INSERT INTO users (user_id, locale, quality) VALUES (7, 'ru', 'fast')")
    old.commit()
    old.close()
    store = SqliteUserStore(path)
    await store.start()
    try:
        prefs = await store.get_prefs(7)
        assert (prefs.locale, prefs.quality, prefs.translate) == (Locale.RU, Quality.FAST, True)
        await store.save_prefs(UserPrefs(7, locale=Locale.RU, translate=False))
        assert (await store.get_prefs(7)).translate is False
    finally:
        await store.stop()
    again = SqliteUserStore(path)  # a second start finds the column there and changes nothing
    await again.start()
    try:
        assert (await again.get_prefs(7)).translate is False
    finally:
        await again.stop()


async def test_admit_adds_jobs_and_caps_jobs_in_flight(store):
    limits = UserLimits(max_in_flight=2, per_minute=0)
    await store.admit([record("a")], limits, NOW)
    await store.admit([record("b", created_at=NOW + 1)], limits, NOW + 1)
    with pytest.raises(TooManyJobsInFlight) as err:
        await store.admit([record("c", created_at=NOW + 2)], limits, NOW + 2)
    assert err.value.params == {"limit": 2, "in_flight": 2, "requested": 1}
    assert await store.get_job("c") is None
    assert [r.job_id for r in await store.active_jobs(1)] == ["a", "b"]
    # other users are not affected
    await store.admit([record("x", user_id=2)], limits, NOW)
    # a finished job frees its slot
    await store.finish("a", Outcome(JobState.DONE, finished_at=NOW + 3, image_key="k"))
    await store.admit([record("c", created_at=NOW + 4)], limits, NOW + 4)
    # several at once (variations) are all or nothing
    await store.finish("b", Outcome(JobState.FAILED, finished_at=NOW + 5, error_code="x"))
    with pytest.raises(TooManyJobsInFlight):
        await store.admit([record("d", created_at=NOW + 6), record("e", created_at=NOW + 6)], limits, NOW + 6)
    assert await store.get_job("d") is None


async def test_rate_limit_says_when_to_try_again(store):
    limits = UserLimits(max_in_flight=0, per_minute=3, window_s=60)
    for i in range(3):
        await store.admit([record(f"r{i}", created_at=NOW + 10 * i)], limits, NOW + 10 * i)
        await store.cancel(f"r{i}", 1, NOW + 10 * i)  # cancelled jobs still count toward the rate
    with pytest.raises(RateLimited) as err:
        await store.admit([record("r3", created_at=NOW + 25)], limits, NOW + 25)
    assert err.value.params == {"limit": 3, "retry_after": 35}
    await store.admit([record("r3", created_at=NOW + 61)], limits, NOW + 61)


async def test_stale_jobs_stop_holding_a_slot(store):
    limits = UserLimits(max_in_flight=1, per_minute=0, expiry_s=100)
    await store.admit([record("old")], limits, NOW)
    with pytest.raises(TooManyJobsInFlight):
        await store.admit([record("n1", created_at=NOW + 50)], limits, NOW + 50)
    await store.admit([record("n2", created_at=NOW + 101)], limits, NOW + 101)


async def test_concurrent_admits_never_pass_the_cap(store):
    limits = UserLimits(max_in_flight=3, per_minute=0)
    outcomes = await asyncio.gather(
        *(store.admit([record(f"c{i}")], limits, NOW) for i in range(10)), return_exceptions=True
    )
    assert sum(o is None for o in outcomes) == 3
    assert all(isinstance(o, TooManyJobsInFlight) for o in outcomes if o is not None)


async def test_job_lifecycle_and_history(store):
    limits = UserLimits(max_in_flight=0, per_minute=0)
    for i in range(4):
        await store.admit([record(f"h{i}", created_at=NOW + i)], limits, NOW + i)
    await store.set_status_message("h0", 99)
    assert (await store.get_job("h0")).status_message_id == 99
    started = await store.mark_started("h0", NOW + 5, "w1")
    assert started.state == JobState.RUNNING and started.worker_id == "w1"
    assert (await store.mark_started("h0", NOW + 6, "w2")).worker_id == "w1"  # only once
    assert await store.mark_started("nope", NOW, "w") is None
    for i, state in ((0, JobState.DONE), (1, JobState.DONE), (2, JobState.FAILED)):
        done = await store.finish(
            f"h{i}",
            Outcome(
                state,
                finished_at=NOW + 10 + i,
                worker_id="w1",
                image_key=f"images/h{i}.png",
                image_url=f"https://x/h{i}",
                profile="fast",
                profile_reason="requested",
                total_s=1.5,
            ),
        )
        assert done.state == state
    assert (await store.get_job("h1")).total_s == 1.5
    assert await store.finish("nope", Outcome(JobState.DONE, finished_at=NOW)) is None
    history = await store.history(1, 10)
    assert [r.job_id for r in history] == ["h1", "h0"]
    assert history[0].image_url == "https://x/h1" and history[0].profile == "fast"
    assert [r.job_id for r in await store.history(1, 1)] == ["h1"]
    assert [r.job_id for r in await store.active_jobs()] == ["h3"]


async def test_cancel_only_own_active_jobs_and_results_do_not_undo_it(store):
    limits = UserLimits(max_in_flight=0, per_minute=0)
    await store.admit([record("k1")], limits, NOW)
    await store.admit([record("k2", user_id=2)], limits, NOW)
    assert await store.cancel("k2", 1, NOW) is None  # someone else's
    cancelled = await store.cancel("k1", 1, NOW + 1)
    assert cancelled.state == JobState.CANCELLED
    assert await store.cancel("k1", 1, NOW + 2) is None  # already
    after = await store.finish("k1", Outcome(JobState.DONE, finished_at=NOW + 3, image_key="i"))
    assert after.state == JobState.CANCELLED
    assert await store.history(1, 10) == []
    assert await store.active_jobs(1) == []


async def test_blocked_users(store):
    assert not await store.is_blocked(9)
    await store.save_prefs(UserPrefs(9, locale=Locale.RU))
    await store.mark_blocked(9, NOW)
    assert await store.is_blocked(9)
    assert (await store.get_prefs(9)).locale == Locale.RU  # prefs survive
    assert (await store.get_prefs(9)).blocked
    await store.save_prefs(UserPrefs(9, locale=Locale.EN))  # saving prefs does not unblock
    assert await store.is_blocked(9)
    await store.unblock(9)
    assert not await store.is_blocked(9) and not (await store.get_prefs(9)).blocked


async def test_stats(store):
    limits = UserLimits(max_in_flight=0, per_minute=0)
    await store.admit([record("s0", created_at=NOW - 100)], limits, NOW - 100)  # before "today"
    for i, user in enumerate((1, 1, 2, 3)):
        await store.admit([record(f"s{i + 1}", user_id=user, created_at=NOW + i)], limits, NOW + i)
    await store.finish("s1", Outcome(JobState.DONE, finished_at=NOW + 10, worker_id="gpu-1", image_key="k"))
    await store.finish("s2", Outcome(JobState.FAILED, finished_at=NOW + 11, worker_id="gpu-2"))
    await store.cancel("s3", 2, NOW + 12)
    await store.mark_started("s4", NOW + 13, "gpu-3")
    await store.mark_blocked(3, NOW)
    stats = await store.stats(NOW)
    assert (stats.submitted, stats.done, stats.failed, stats.cancelled) == (4, 1, 1, 1)
    assert stats.active == 2  # s0 (older) and s4
    assert stats.users == 3
    assert stats.blocked_users == 1
    assert stats.workers == {"gpu-1": NOW + 10, "gpu-2": NOW + 11, "gpu-3": NOW + 13}


async def test_delivery_log_claims_once(delivery_log):
    assert await delivery_log.claim("j1") == Claim.TAKEN
    assert await delivery_log.claim("j1") == Claim.HELD  # claimed, not confirmed: not skipped
    await delivery_log.forget("j1")
    assert await delivery_log.claim("j1") == Claim.TAKEN
    results = await asyncio.gather(*(delivery_log.claim("j2") for _ in range(5)))
    assert results.count(Claim.TAKEN) == 1
    assert results.count(Claim.HELD) == 4
    await delivery_log.confirm("j2")
    assert await delivery_log.claim("j2") == Claim.DELIVERED
    await delivery_log.forget("j2")  # a confirmed claim is final: forget changes nothing
    assert await delivery_log.claim("j2") == Claim.DELIVERED


async def test_outbox_lists_jobs_not_yet_on_the_queue(store):
    await store.admit([record("o1", created_at=NOW), record("o2", created_at=NOW + 1)], UserLimits(), NOW + 1)
    assert [r.job_id for r in await store.unpublished(NOW + 5)] == ["o1", "o2"]
    assert [r.job_id for r in await store.unpublished(NOW + 0.5)] == ["o1"]  # younger ones: in flight
    await store.mark_published("o1", NOW + 2)
    assert [r.job_id for r in await store.unpublished(NOW + 5)] == ["o2"]
    assert (await store.get_job("o1")).published_at == NOW + 2
    await store.cancel("o2", 1, NOW + 3)  # a cancelled job is not published any more
    assert await store.unpublished(NOW + 5) == []
    job = (await store.get_job("o1")).job()  # the outbox rebuilds the job from its record
    assert (job.job_id, job.prompt, job.seed, job.created_at) == ("o1", "prompt o1", 7, NOW)


async def test_claim_of_a_crashed_process_is_taken_over_after_its_lease(shared_db):
    crashed, survivor = durable_logs(*shared_db, lease_s=0.4, owners=("bot-a", "bot-b"))
    for log in (crashed, survivor):
        await log.start()
    try:
        assert await crashed.claim("lost") == Claim.TAKEN  # claimed, then the process died unconfirmed
        assert await survivor.claim("lost") == Claim.HELD  # the lease still holds
        await asyncio.sleep(0.25)
        await crashed.renew("lost")  # a slow send renews its lease
        await asyncio.sleep(0.25)
        assert await survivor.claim("lost") == Claim.HELD  # renewed 0.25 s ago: still held
        await asyncio.sleep(0.5)
        assert await survivor.claim("lost") == Claim.TAKEN  # taken over: the picture is not lost
        await crashed.forget("lost")  # the old holder cannot give back what is no longer its own
        assert await crashed.claim("lost") == Claim.HELD
        await survivor.confirm("lost")
        await asyncio.sleep(0.5)
        assert await crashed.claim("lost") == Claim.DELIVERED  # confirmed claims are final
    finally:
        for log in (crashed, survivor):
            await log.stop()


async def test_claim_is_taken_over_at_once_by_the_same_instance_restarted(shared_db):
    [before] = durable_logs(*shared_db, lease_s=60, owners=("bot-1",))
    await before.start()
    assert await before.claim("mid-send") == Claim.TAKEN
    await before.stop()  # killed while sending
    after, other = durable_logs(*shared_db, lease_s=60, owners=("bot-1", "bot-2"))
    for log in (after, other):
        await log.start()
    try:
        assert await other.claim("mid-send") == Claim.HELD  # another instance waits for the lease
        assert await after.claim("mid-send") == Claim.TAKEN  # the restarted one takes it at once
        assert await after.claim("mid-send") == Claim.HELD  # ... once
    finally:
        for log in (after, other):
            await log.stop()


async def test_sqlite_database_of_the_first_release_is_upgraded(tmp_path):
    """A file made by the first release (no outbox column, no claim owners) opens and works."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, chat_id INTEGER NOT NULL,"
        " prompt TEXT NOT NULL, negative_prompt TEXT NOT NULL DEFAULT '', width INTEGER NOT NULL,"
        " height INTEGER NOT NULL, seed INTEGER NOT NULL, quality TEXT NOT NULL, locale TEXT NOT NULL,"
        " created_at REAL NOT NULL, state TEXT NOT NULL, status_message_id INTEGER, started_at REAL,"
        " finished_at REAL, image_key TEXT, image_url TEXT, profile TEXT, profile_reason TEXT,"
        " worker_id TEXT NOT NULL DEFAULT '', error_code TEXT, total_s REAL NOT NULL DEFAULT 0);"
        "CREATE TABLE deliveries (job_id TEXT PRIMARY KEY, claimed_at REAL NOT NULL, delivered_at REAL);"
        f"INSERT INTO jobs (job_id, user_id, chat_id, prompt, width, height, seed, quality, locale,"
        f" created_at, state) VALUES ('old', 1, 1, 'a fox', 512, 512, 3, 'auto', 'en', {NOW}, 'queued');"
        "INSERT INTO deliveries VALUES ('gone', 1.0, NULL);"
    )
    old.commit()
    old.close()
    db = database(path)
    store, log = SqliteUserStore(db), SqliteDeliveryLog(db, keep_s=1e12, lease_s=60)
    await store.start()
    await log.start()
    try:
        assert [r.job_id for r in await store.unpublished(NOW + 1)] == ["old"]  # republished after the upgrade
        assert await log.claim("gone") == Claim.TAKEN  # an old unconfirmed claim, long expired
    finally:
        await log.stop()
        await store.stop()


# --- durable only -----------------------------------------------------------------------------


async def test_durable_store_survives_a_restart(shared_db):
    first, second = durable_stores(*shared_db, 2)
    await first.start()
    await first.save_prefs(UserPrefs(1, locale=Locale.RU, aspect="3:2", send_as=SendAs.DOCUMENT))
    await first.admit([record("d1")], UserLimits(), time.time())
    await first.stop()
    await second.start()
    try:
        assert (await second.get_prefs(1)).aspect == "3:2"
        assert (await second.get_job("d1")).prompt == "prompt d1"
    finally:
        await second.stop()


async def test_two_instances_sharing_the_database_keep_the_limits_and_dedup(shared_db):
    """Two bot instances: separate connections (as separate processes would have)."""
    a, b = durable_stores(*shared_db, 2)
    la, lb = durable_logs(*shared_db, lease_s=15.0, owners=("a", "b"))
    for component in (a, b, la, lb):
        await component.start()
    try:
        limits = UserLimits(max_in_flight=2, per_minute=0)
        outcomes = await asyncio.gather(
            *(s.admit([record(f"p{i}")], limits, NOW) for i, s in enumerate([a, b] * 4)),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 2
        claims = await asyncio.gather(*(log.claim("job") for log in [la, lb] * 3))
        assert claims.count(Claim.TAKEN) == 1
    finally:
        for component in (a, b, la, lb):
            await component.stop()


# --- bans (issue 18) ---------------------------------------------------------------------------


async def test_ban_unban_and_the_notice_is_given_once(store):
    assert not (await store.get_prefs(31)).banned
    assert await store.ban(31, NOW)  # a user never seen can be banned
    assert not await store.ban(31, NOW + 1)  # already banned
    assert (await store.get_prefs(31)).banned
    await store.save_prefs(UserPrefs(31, locale=Locale.RU))  # saving prefs does not lift a ban
    prefs = await store.get_prefs(31)
    assert prefs.banned and prefs.locale == Locale.RU
    notices = await asyncio.gather(*(store.ban_noticed(31) for _ in range(5)))
    assert notices.count(True) == 1  # told once, even with messages arriving at once
    assert not await store.ban_noticed(31)
    assert (await store.stats(NOW)).banned_users == 1
    assert await store.unban(31)
    assert not await store.unban(31)
    assert not (await store.get_prefs(31)).banned
    assert not await store.ban_noticed(31)  # not banned: nothing to tell
    assert await store.ban(31, NOW + 2)  # banned again: told again, once
    assert await store.ban_noticed(31)
    assert not await store.ban_noticed(31)
    assert (await store.get_prefs(31)).locale == Locale.RU  # prefs survive bans


async def test_sqlite_users_table_without_ban_columns_is_upgraded(tmp_path):
    """A file made before bans existed gets the columns (``COLUMNS``) and keeps its users."""
    path = tmp_path / "before-bans.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE users (user_id INTEGER PRIMARY KEY, locale TEXT, aspect TEXT,"
        " quality TEXT NOT NULL DEFAULT 'auto', send_as TEXT NOT NULL DEFAULT 'photo', blocked_at REAL);"
        "INSERT INTO users (user_id, locale) VALUES (7, 'ru');"
    )
    old.commit()
    old.close()
    store = SqliteUserStore(path)
    await store.start()
    try:
        assert (await store.get_prefs(7)).locale == Locale.RU
        assert await store.ban(7, NOW)
        assert (await store.get_prefs(7)).banned
        assert await store.ban_noticed(7)
    finally:
        await store.stop()


async def test_request_message_and_file_id_are_kept(store):
    limits = UserLimits(max_in_flight=0, per_minute=0)
    await store.admit([record("f1", request_message_id=555)], limits, NOW)
    assert (await store.get_job("f1")).request_message_id == 555
    await store.set_file_id("f1", "photo:AgAC-1")
    await store.finish("f1", Outcome(JobState.DONE, finished_at=NOW + 1, image_key="images/f1.png"))
    [done] = await store.history(1, 5)
    assert (done.file_id, done.request_message_id) == ("photo:AgAC-1", 555)
    await store.set_file_id("unknown", "photo:x")  # nothing to update: no error


async def test_the_inline_message_of_a_guest_job_is_kept(store):
    limits = UserLimits(max_in_flight=0, per_minute=0)
    await store.admit([record("g1")], limits, NOW)
    assert (await store.get_job("g1")).inline_message_id is None
    await store.set_inline_message("g1", "AgAAAGuest-1")
    await store.finish("g1", Outcome(JobState.DONE, finished_at=NOW + 1, image_key="images/g1.png"))
    done = await store.get_job("g1")
    assert (done.inline_message_id, done.status_message_id, done.state) == ("AgAAAGuest-1", None, JobState.DONE)
    await store.set_inline_message("unknown", "x")  # nothing to update: no error


async def test_a_file_of_the_older_schema_gets_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old_schema = SCHEMA.replace(
        ",\n    request_message_id INTEGER,\n    file_id TEXT,\n    inline_message_id TEXT,\n"
        "    paid_credit INTEGER NOT NULL DEFAULT 0,\n    lane TEXT NOT NULL DEFAULT 'priority'\n",
        "\n",
    )
    assert "file_id" not in old_schema and "paid_credit" not in old_schema and "inline_message_id" not in old_schema
    assert "lane" not in old_schema
    conn = sqlite3.connect(path)
    conn.executescript(old_schema)
    conn.execute(
        "INSERT INTO jobs (job_id, user_id, chat_id, prompt, width, height, seed, quality, locale, created_at, state) "
        "VALUES ('old', 1, 1, 'an old prompt', 512, 512, 7, 'auto', 'en', ?, 'done')",
        (NOW,),
    )
    conn.commit()
    conn.close()
    store = SqliteUserStore(path)
    await store.start()
    try:
        old = await store.get_job("old")
        assert old.prompt == "an old prompt" and old.file_id is None and old.request_message_id is None
        assert old.paid_credit is False
        assert old.lane == Lane.PRIORITY  # a job from before the lanes: priority, as it went then
        usage = await store.usage(1, recent_since=NOW - 60, day_since=NOW - 60)
        assert (usage.recent, usage.priority_today) == (1, 1)
        await store.set_file_id("old", "photo:1")
        assert (await store.get_job("old")).file_id == "photo:1"
        assert old.inline_message_id is None
        await store.set_inline_message("old", "AgAAA-1")
        assert (await store.get_job("old")).inline_message_id == "AgAAA-1"
    finally:
        await store.stop()
