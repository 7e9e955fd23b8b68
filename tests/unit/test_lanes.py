"""The lane rules, the daily allowance and the lanes' share of the work: pure functions of the
domain (``domain/lanes.py``), the batches the worker makes from them, and the quality policy
per lane."""

from __future__ import annotations

import calendar

import pytest

from domain.lanes import (
    Allowance,
    LaneReason,
    LaneRules,
    LaneShare,
    LaneTurns,
    Usage,
    allowance_day,
    allowance_of,
    choose_lane,
    lane_backlog,
    plan_lanes,
    usage_since,
)
from domain.models import Lane, Quality
from domain.policy import AdaptivePolicy
from domain.scheduling import pick_lane_batch

P, R = Lane.PRIORITY, Lane.RELAXED


def utc(*parts: int) -> float:
    return float(calendar.timegm((*parts, *(0,) * (6 - len(parts)))))


# --------------------------------------------------------------------------- choose_lane


def test_a_light_user_gets_priority():
    decision = choose_lane(0, None)
    assert (decision.lane, decision.reason) == (P, LaneReason.LIGHT_USE)
    assert choose_lane(29, None, rules=LaneRules(relaxed_after=30)).lane == P


def test_a_heavy_user_goes_relaxed_from_the_threshold_on():
    rules = LaneRules(relaxed_after=30)
    decision = choose_lane(30, None, rules=rules)
    assert (decision.lane, decision.reason) == (R, LaneReason.HEAVY_USE)
    assert choose_lane(500, None, rules=rules).lane == R


def test_no_threshold_means_nobody_goes_relaxed_for_use():
    assert choose_lane(10_000, None, rules=LaneRules(relaxed_after=0)).lane == P


def test_an_allowance_used_up_goes_relaxed_and_a_credit_always_gets_priority():
    used = choose_lane(0, 0)
    assert (used.lane, used.reason) == (R, LaneReason.ALLOWANCE_USED)
    assert choose_lane(0, 1).lane == P
    for recent, left in ((0, 0), (10_000, None), (10_000, 0)):
        paid = choose_lane(recent, left, has_credit=True)
        assert (paid.lane, paid.reason) == (P, LaneReason.CREDIT)


def test_plan_counts_each_job_for_the_next():
    rules = LaneRules(relaxed_after=5, daily_allowance=3)
    lanes = [d.lane for d in plan_lanes(rules, Usage(recent=2, priority_today=1), 0.0, 4)]
    assert lanes == [P, P, R, R]  # two priority left today, then the allowance is used
    heavy = plan_lanes(LaneRules(relaxed_after=5), Usage(recent=3), 0.0, 4)
    assert [d.lane for d in heavy] == [P, P, R, R]  # the 6th picture in the window is relaxed
    paid = plan_lanes(rules, Usage(recent=0, priority_today=3), 0.0, 3, credits=1)
    assert [(d.lane, d.reason) for d in paid] == [
        (P, LaneReason.CREDIT),
        (R, LaneReason.ALLOWANCE_USED),
        (R, LaneReason.ALLOWANCE_USED),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"relaxed_after": -1},
        {"daily_allowance": -1},
        {"recent_window_s": 0},
        {"renew_hour_utc": 24},
        {"relaxed_every": 1},
    ],
)
def test_rules_refuse_nonsense(bad):
    with pytest.raises(ValueError):
        LaneRules(**bad)


# --------------------------------------------------------------------------- the allowance day


def test_the_allowance_day_renews_at_midnight_utc_by_default():
    now = utc(2026, 12, 7, 23, 59, 59)
    assert allowance_day(now) == (utc(2026, 12, 7), utc(2026, 12, 8))
    assert allowance_day(utc(2026, 12, 8)) == (utc(2026, 12, 8), utc(2026, 12, 9))  # the boundary is the new day


def test_the_allowance_day_renews_at_the_operators_hour():
    assert allowance_day(utc(2026, 12, 7, 5, 59), 6) == (utc(2026, 12, 6, 6), utc(2026, 12, 7, 6))
    assert allowance_day(utc(2026, 12, 7, 6), 6) == (utc(2026, 12, 7, 6), utc(2026, 12, 8, 6))
    # across a month and a year
    assert allowance_day(utc(2027, 1, 1, 2), 6) == (utc(2026, 12, 31, 6), utc(2027, 1, 1, 6))


def test_allowance_left_and_renewal():
    rules = LaneRules(daily_allowance=5, renew_hour_utc=6)
    now = utc(2026, 12, 7, 12)
    allowance = allowance_of(rules, Usage(priority_today=3), now)
    assert allowance == Allowance(per_day=5, used=3, renews_at=utc(2026, 12, 8, 6))
    assert allowance.left == 2
    assert allowance_of(rules, Usage(priority_today=9), now).left == 0  # never negative
    assert allowance_of(LaneRules(), Usage(priority_today=9), now) is None  # off by default
    assert usage_since(rules, now) == (now - 3600.0, utc(2026, 12, 7, 6))


# --------------------------------------------------------------------------- the share


def test_turns_priority_first_and_relaxed_one_in_every_k():
    turns = LaneTurns(relaxed_every=4)
    got = [turns.next(True, True) for _ in range(12)]
    assert got == [P, P, P, R] * 3


def test_a_lone_priority_job_goes_first_behind_any_relaxed_backlog():
    turns = LaneTurns(relaxed_every=4)
    for _ in range(50):  # a relaxed backlog being worked through
        assert turns.next(False, True) == R
    assert turns.next(True, True) == P  # the priority job that came: next, not after a relaxed turn


def test_turns_with_one_lane_or_none():
    turns = LaneTurns(relaxed_every=2)
    assert turns.next(False, False) is None
    assert [turns.next(True, False) for _ in range(5)] == [P] * 5  # nothing owed to an empty lane
    assert [turns.next(True, True) for _ in range(4)] == [P, R, P, R]  # 2: the lanes take turns


def test_lane_backlog_is_what_a_job_waits_behind():
    backlogs = {P: 3, R: 200}
    assert lane_backlog(backlogs, P) == 3
    assert lane_backlog(backlogs, R) == 203
    assert lane_backlog({}, P) == 0


# --------------------------------------------------------------------------- batches


def test_a_batch_is_led_by_the_lane_whose_turn_it_is_and_filled_with_what_fits():
    items = [(R, "a", 1), (R, "a", 2), (P, "a", 3), (R, "b", 4), (P, "b", 5)]  # (lane, group, user)
    kw = {"lane": lambda i: i[0], "group": lambda i: i[1], "user": lambda i: i[2], "limit": 3}
    batch, rest = pick_lane_batch(items, first=P, **kw)
    assert batch == [(P, "a", 3), (R, "a", 1), (R, "a", 2)]  # priority leads; relaxed of its group ride along
    assert rest == [(R, "b", 4), (P, "b", 5)]
    batch, _ = pick_lane_batch(items, first=R, **kw)
    assert batch[0] == (R, "a", 1) and (P, "a", 3) in batch
    only_relaxed = [i for i in items if i[0] == R]
    assert pick_lane_batch(only_relaxed, first=P, **kw)[0] == [(R, "a", 1), (R, "a", 2)]


def test_a_priority_led_batch_keeps_the_relaxed_lanes_slots():
    items = [(P, "a", 1), (P, "a", 2), (P, "a", 3), (P, "a", 4), (R, "a", 5), (R, "a", 6), (R, "b", 7)]
    kw = {"lane": lambda i: i[0], "group": lambda i: i[1], "user": lambda i: i[2], "limit": 4}
    batch, rest = pick_lane_batch(items, first=P, reserve=1, **kw)
    assert batch == [(P, "a", 1), (P, "a", 2), (P, "a", 3), (R, "a", 5)]
    assert rest == [(P, "a", 4), (R, "a", 6), (R, "b", 7)]
    only_b = [(P, "a", 1), (P, "a", 2), (P, "a", 3), (P, "a", 4), (R, "b", 7)]
    batch, _ = pick_lane_batch(only_b, first=P, reserve=1, **kw)  # nothing compatible: no slot kept empty
    assert [i[0] for i in batch] == [P] * 4


def test_share_one_slot_in_k_while_both_lanes_have_work():
    share = LaneShare(relaxed_every=4)
    plans = []
    for _ in range(5):
        plans.append(share.plan(4, True, True))
        share.took(plans[-1][1])
    assert plans == [(P, 1)] * 5  # a priority-led batch of 4, one slot the relaxed lane's, every time
    assert share.plan(4, True, False) == (P, 0) and share.owed == 0  # nothing owed to an empty lane
    assert share.plan(4, False, True) == (R, 0)


def test_share_with_batches_of_one_gives_the_relaxed_lane_one_batch_in_k():
    share = LaneShare(relaxed_every=4)
    leads = []
    for _ in range(8):
        lead, _reserve = share.plan(1, True, True)
        leads.append(lead)
        share.took(1 if lead == R else 0)
    assert leads == [P, P, P, R] * 2


def test_share_owed_when_nothing_could_ride_along_makes_a_relaxed_batch():
    share = LaneShare(relaxed_every=4)
    leads = []
    for _ in range(5):
        lead, _ = share.plan(4, True, True)
        leads.append(lead)
        share.took(4 if lead == R else 0)  # the relaxed jobs were of another size: none rode along
    assert leads == [P, P, P, R, P]


# --------------------------------------------------------------------------- quality per lane


def test_the_priority_lane_keeps_full_quality_while_the_relaxed_one_degrades():
    policy = AdaptivePolicy({"quality": 10.0, "balanced": 4.0, "fast": 1.0}, target_wait_s=60, clock=lambda: 0.0)
    backlogs = {P: 2, R: 200}
    priority, _ = policy.choose(Quality.AUTO, lane_backlog(backlogs, P), P)
    relaxed, _ = policy.choose(Quality.AUTO, lane_backlog(backlogs, R), R)
    assert (priority.name, relaxed.name) == ("quality", "fast")
    assert policy.level == 0  # the priority lane's level; the relaxed one has its own


# --------------------------------------------------------------------------- on the wire


def test_the_lane_travels_only_when_relaxed_so_a_previous_release_reads_priority_jobs():
    import json

    from domain.codec import decode_job, decode_request, encode_cancel, encode_job
    from domain.models import Cancel, Job

    job = Job(user_id=1, chat_id=1, prompt="a fox", width=256, height=256, seed=1)
    assert "lane" not in json.loads(encode_job(job))["data"]  # the default: left out
    relaxed = job.model_copy(update={"lane": R})
    assert json.loads(encode_job(relaxed))["data"]["lane"] == "relaxed"
    assert decode_job(encode_job(relaxed)).lane == R and decode_job(encode_job(job)).lane == P
    cancel = Cancel(job_id=job.job_id, user_id=1, lane=R)
    assert decode_request(encode_cancel(cancel)) == cancel
    assert "lane" not in json.loads(encode_cancel(Cancel(job_id="j", user_id=1)))["data"]
