"""Fair lanes under load: which lane a job waits in, the daily allowance, and the share of the
work each lane gets.

Two lanes (``Lane``): workers drain the priority lane first, and the relaxed lane gets a
guaranteed share while it has work, so it never starves: at least one in ``relaxed_every`` of
the jobs the queue hands out (``LaneTurns``) and of a worker's batch slots (``LaneShare``).
Under no load both lanes go at once: a lane only orders the work that waits.

A job's lane is decided at admission by ``choose_lane``, one pure function:

- a paid credit spent on the job: priority, always;
- a daily allowance (``daily_allowance`` > 0) used up today: relaxed;
- more than ``relaxed_after`` pictures in the last ``recent_window_s``: relaxed (heavy use);
- else priority (light use).

Nobody is refused for their lane: a relaxed job is made, only later under load and at a faster
quality profile when the service is busy (``AdaptivePolicy`` keeps quality longest for priority).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from domain.models import Lane

DAY_S = 86_400.0


class LaneReason(StrEnum):
    """Why a job got its lane (metrics, logs; the status says the lane)."""

    CREDIT = "credit"  # a paid credit is spent on it
    LIGHT_USE = "light_use"  # few pictures lately
    HEAVY_USE = "heavy_use"  # more than ``relaxed_after`` pictures in the window
    ALLOWANCE_USED = "allowance_used"  # the daily allowance is used up


@dataclass(frozen=True)
class LaneDecision:
    lane: Lane
    reason: LaneReason


@dataclass(frozen=True)
class LaneRules:
    """The operator's settings (``LANES_*``, ``DAILY_ALLOWANCE*``)."""

    # Pictures in the last ``recent_window_s`` above which a user's jobs go relaxed (0: never).
    relaxed_after: int = 30
    recent_window_s: float = 3600.0
    # Priority pictures per user per day (0: no allowance). Past it: relaxed, never refused.
    daily_allowance: int = 0
    # The hour (UTC, 0-23) at which the allowance renews.
    renew_hour_utc: int = 0
    # At least one in this many jobs handed out (and batches made) is relaxed while relaxed jobs
    # wait (2: the lanes take turns).
    relaxed_every: int = 4

    def __post_init__(self) -> None:
        if self.relaxed_after < 0 or self.daily_allowance < 0:
            raise ValueError("LANES_RELAXED_AFTER and DAILY_ALLOWANCE must not be negative")
        if self.recent_window_s <= 0:
            raise ValueError("LANES_RECENT_WINDOW_S must be positive")
        if not 0 <= self.renew_hour_utc <= 23:
            raise ValueError("DAILY_ALLOWANCE_RENEW_HOUR must be an hour of the day, 0 to 23")
        if self.relaxed_every < 2:
            raise ValueError("LANES_RELAXED_EVERY must be 2 or more (2: the lanes take turns)")


def choose_lane(
    recent_use: int,
    allowance_left: int | None,
    has_credit: bool = False,
    rules: LaneRules | None = None,
) -> LaneDecision:
    """The lane of one job.

    ``recent_use``: the user's pictures (queued, running or made; failed and cancelled ones do
    not count) in the last ``rules.recent_window_s``, this job not included;
    ``allowance_left``: priority pictures left today (None: no allowance configured);
    ``has_credit``: a paid credit will be spent on this job (then priority, whatever else)."""
    rules = rules or LaneRules()
    if has_credit:
        return LaneDecision(Lane.PRIORITY, LaneReason.CREDIT)
    if allowance_left is not None and allowance_left <= 0:
        return LaneDecision(Lane.RELAXED, LaneReason.ALLOWANCE_USED)
    if rules.relaxed_after and recent_use >= rules.relaxed_after:
        return LaneDecision(Lane.RELAXED, LaneReason.HEAVY_USE)
    return LaneDecision(Lane.PRIORITY, LaneReason.LIGHT_USE)


# --------------------------------------------------------------------------- the allowance


def allowance_day(now: float, renew_hour_utc: int = 0) -> tuple[float, float]:
    """The allowance day ``now`` falls in: (when it began, when it renews), as Unix times. The
    day renews at ``renew_hour_utc`` o'clock UTC every day; ``now`` exactly at a renewal is the
    first instant of the new day."""
    day = time.gmtime(now)
    midnight = calendar.timegm((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0))
    start = midnight + renew_hour_utc * 3600.0
    if now < start:
        start -= DAY_S
    return start, start + DAY_S


@dataclass(frozen=True)
class Usage:
    """What the user store counts for a user (``UserStore.usage``): pictures queued, running or
    made (failed and cancelled ones do not count)."""

    recent: int = 0  # in the sliding window, any lane
    priority_today: int = 0  # in the priority lane since the allowance day began


@dataclass(frozen=True)
class Allowance:
    """The daily allowance of one user, now (``LaneRules.daily_allowance`` > 0)."""

    per_day: int
    used: int
    renews_at: float

    @property
    def left(self) -> int:
        return max(0, self.per_day - self.used)


def allowance_of(rules: LaneRules, usage: Usage, now: float) -> Allowance | None:
    """The user's allowance today; None when the operator set none."""
    if not rules.daily_allowance:
        return None
    _, renews_at = allowance_day(now, rules.renew_hour_utc)
    return Allowance(rules.daily_allowance, usage.priority_today, renews_at)


def usage_since(rules: LaneRules, now: float) -> tuple[float, float]:
    """(start of the sliding window, start of the allowance day): what ``UserStore.usage`` counts from."""
    return now - rules.recent_window_s, allowance_day(now, rules.renew_hour_utc)[0]


def plan_lanes(rules: LaneRules, usage: Usage, now: float, count: int, credits: int = 0) -> list[LaneDecision]:
    """The lanes of ``count`` jobs asked for at once (variations), in order: each counts as used
    for the next. ``credits``: paid credits available (spent first, one a job)."""
    decisions: list[LaneDecision] = []
    recent, today = usage.recent, usage.priority_today
    for i in range(count):
        left = None if not rules.daily_allowance else rules.daily_allowance - today
        decision = choose_lane(recent, left, has_credit=i < credits, rules=rules)
        decisions.append(decision)
        recent += 1
        if decision.lane == Lane.PRIORITY and decision.reason != LaneReason.CREDIT:
            today += 1
    return decisions


# --------------------------------------------------------------------------- the share


@dataclass
class LaneTurns:
    """Which lane the next job (or batch) comes from: priority while it has work, except that
    after ``relaxed_every - 1`` priority turns in a row while relaxed work waited, relaxed gets
    the next turn. A relaxed turn taken because priority had nothing resets the count too, so a
    lone priority job behind any relaxed backlog goes next."""

    relaxed_every: int = 4
    _priority_run: int = 0

    def next(self, priority_waiting: bool, relaxed_waiting: bool) -> Lane | None:
        """The lane to take from now and count the turn (None: nothing waits)."""
        if not relaxed_waiting:
            if priority_waiting:
                self._priority_run = 0  # relaxed had no work: nothing is owed to it
                return Lane.PRIORITY
            return None
        if priority_waiting and self._priority_run < max(2, self.relaxed_every) - 1:
            self._priority_run += 1
            return Lane.PRIORITY
        self._priority_run = 0
        return Lane.RELAXED


@dataclass
class LaneShare:
    """The relaxed lane's share of a worker's batch slots: while both lanes have jobs in hand,
    it is owed ``limit / relaxed_every`` slots a batch. A batch is led by the priority lane, with
    the slots owed (``reserve``) kept for compatible relaxed jobs, so the relaxed lane gets its
    share without a priority job ever waiting for a whole relaxed batch; what could not be given
    (no compatible relaxed job, or batches of one) adds up, and once a whole batch is owed the
    relaxed lane leads one. With one lane in hand nothing is owed."""

    relaxed_every: int = 4
    owed: float = 0.0

    def plan(self, limit: int, priority: bool, relaxed: bool) -> tuple[Lane, int]:
        """The lane that leads the next batch of ``limit`` and the slots kept for the other
        (``priority``, ``relaxed``: whether that lane has jobs in hand)."""
        if not (priority and relaxed):
            self.owed = 0.0
            return (Lane.PRIORITY if priority or not relaxed else Lane.RELAXED), 0
        self.owed = min(self.owed + limit / max(2, self.relaxed_every), 2.0 * limit)
        if self.owed >= limit:
            return Lane.RELAXED, 0
        return Lane.PRIORITY, int(self.owed)

    def took(self, relaxed: int) -> None:
        """The batch made had ``relaxed`` relaxed jobs."""
        self.owed = max(0.0, self.owed - relaxed)


LANE_ORDER: dict[Lane, int] = {Lane.PRIORITY: 0, Lane.RELAXED: 1}


def lane_backlog(backlogs: Mapping[Lane, int], lane: Lane) -> int:
    """The jobs a new job of ``lane`` waits behind: a priority job only the priority lane's
    (the relaxed share aside), a relaxed job everyone's. What the quality policy is told."""
    if lane == Lane.PRIORITY:
        return backlogs.get(Lane.PRIORITY, 0)
    return sum(backlogs.values())
