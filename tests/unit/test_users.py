"""Per-user limits (domain/users.py)."""

from __future__ import annotations

import pytest

from domain.errors import RateLimited, TooManyJobsInFlight
from domain.models import ErrorCode, JobStatus, Locale, Quality, Result, Timings
from domain.users import (
    JobRecord,
    JobState,
    Outcome,
    UserLimits,
    apply_outcome,
    check_admission,
)

NOW = 10_000.0


def test_admission_within_limits():
    check_admission(UserLimits(2, 5), now=NOW, active_created=[NOW - 1], recent_created=[NOW - 1])


def test_in_flight_cap_counts_the_request():
    limits = UserLimits(max_in_flight=3, per_minute=0)
    check_admission(limits, now=NOW, active_created=[NOW], recent_created=[], requested=2)
    with pytest.raises(TooManyJobsInFlight) as caught:
        check_admission(limits, now=NOW, active_created=[NOW, NOW], recent_created=[], requested=2)
    assert caught.value.params == {"limit": 3, "in_flight": 2, "requested": 2}


def test_expired_jobs_do_not_hold_slots():
    limits = UserLimits(max_in_flight=1, per_minute=0, expiry_s=60)
    check_admission(limits, now=NOW, active_created=[NOW - 61], recent_created=[])


def test_rate_limit_retry_after():
    limits = UserLimits(max_in_flight=0, per_minute=3, window_s=60)
    recent = [NOW - 50, NOW - 20, NOW - 10]
    with pytest.raises(RateLimited) as caught:
        check_admission(limits, now=NOW, active_created=[], recent_created=recent)
    assert caught.value.params == {"limit": 3, "retry_after": 10}
    with pytest.raises(RateLimited) as caught:  # two more: the two oldest must leave the window
        check_admission(limits, now=NOW, active_created=[], recent_created=recent, requested=2)
    assert caught.value.params["retry_after"] == 40
    with pytest.raises(RateLimited) as caught:  # more than the whole budget
        check_admission(limits, now=NOW, active_created=[], recent_created=[], requested=4)
    assert caught.value.params["retry_after"] == 60


def test_no_caps():
    check_admission(UserLimits(0, 0), now=NOW, active_created=[NOW] * 100, recent_created=[NOW] * 100)


def record(state=JobState.QUEUED) -> JobRecord:
    return JobRecord(
        job_id="j",
        user_id=1,
        chat_id=1,
        prompt="p",
        negative_prompt="",
        width=1024,
        height=768,
        seed=1,
        quality=Quality.AUTO,
        locale=Locale.EN,
        created_at=NOW,
        state=state,
    )


def test_outcome_from_results_and_cancelled_stays_cancelled():
    done = Result(
        job_id="j",
        user_id=1,
        chat_id=1,
        status=JobStatus.DONE,
        image_key="k",
        image_url="u",
        width=512,
        height=384,
        profile="fast",
        timings=Timings(total_s=3.0),
        worker_id="w",
    )
    outcome = Outcome.from_result(done)
    assert (outcome.state, outcome.total_s, outcome.error_code) == (JobState.DONE, 3.0, None)
    after = apply_outcome(record(JobState.RUNNING), outcome)
    assert after.state == JobState.DONE and (after.width, after.height) == (1024, 768)  # asked size kept
    assert apply_outcome(record(JobState.CANCELLED), outcome).state == JobState.CANCELLED
    failed = Result(job_id="j", user_id=1, chat_id=1, status=JobStatus.FAILED, error_code=ErrorCode.STORAGE_UNAVAILABLE)
    assert Outcome.from_result(failed).error_code == "storage_unavailable"
