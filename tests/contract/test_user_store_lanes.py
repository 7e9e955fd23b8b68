"""The user store's part in the lanes, on every adapter (memory, SQLite, PostgreSQL): a job's
lane is kept, and ``usage`` counts what the lane rules and the daily allowance read."""

from __future__ import annotations

from domain.lanes import LaneRules, Usage, usage_since
from domain.models import Lane
from domain.users import JobState, Outcome, UserLimits
from tests.contract.test_user_store_contract import NOW, record

NO_CAP = UserLimits(max_in_flight=0, per_minute=0)


async def test_the_lane_is_kept_with_the_job(store):
    await store.admit([record("p1"), record("r1", created_at=NOW + 1, lane=Lane.RELAXED)], NO_CAP, NOW + 1)
    assert (await store.get_job("p1")).lane == Lane.PRIORITY
    relaxed = await store.get_job("r1")
    assert relaxed.lane == Lane.RELAXED
    assert relaxed.job().lane == Lane.RELAXED  # what the outbox publishes again
    assert [r.lane for r in await store.active_jobs(1)] == [Lane.PRIORITY, Lane.RELAXED]
    finished = await store.finish("r1", Outcome(JobState.DONE, NOW + 5, image_key="k"))
    assert finished.lane == Lane.RELAXED  # a finish keeps it


async def test_usage_counts_pictures_in_the_window_and_priority_ones_since_the_day_began(store):
    day_start = NOW - 5000
    jobs = [
        record("before-day", created_at=day_start - 1),  # yesterday: counted nowhere
        record("early", created_at=NOW - 4000),  # today, outside the hour: the allowance only
        record("done", created_at=NOW - 100),
        record("relaxed", created_at=NOW - 50, lane=Lane.RELAXED),  # the window, not the allowance
        record("failed", created_at=NOW - 10),  # an honest error costs nothing
        record("cancelled", created_at=NOW - 5),
        record("running", created_at=NOW - 2),
        record("other user", user_id=2, created_at=NOW - 1),
    ]
    await store.admit(jobs[:7], NO_CAP, NOW)
    await store.admit(jobs[7:], NO_CAP, NOW)
    await store.finish("done", Outcome(JobState.DONE, NOW - 90, image_key="k"))
    await store.finish("failed", Outcome(JobState.FAILED, NOW - 9, error_code="generation_failed"))
    assert await store.cancel("cancelled", 1, NOW - 4) is not None
    await store.mark_started("running", NOW - 1, "w1")
    usage = await store.usage(1, recent_since=NOW - 3600, day_since=day_start)
    assert usage == Usage(recent=3, priority_today=3)  # done, relaxed, running / early, done, running
    assert await store.usage(2, recent_since=NOW - 3600, day_since=day_start) == Usage(recent=1, priority_today=1)
    assert await store.usage(3, recent_since=NOW - 3600, day_since=day_start) == Usage()


async def test_usage_at_the_day_boundary(store):
    rules = LaneRules(daily_allowance=2, renew_hour_utc=0)
    midnight = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    assert midnight % 86_400 == 0
    await store.admit([record("late", created_at=midnight - 1)], NO_CAP, midnight - 1)
    await store.admit([record("at", created_at=midnight)], NO_CAP, midnight)
    recent_since, day_since = usage_since(rules, midnight)
    assert day_since == midnight
    usage = await store.usage(1, recent_since=recent_since, day_since=day_since)
    assert usage == Usage(recent=2, priority_today=1)  # the one from before midnight renewed
