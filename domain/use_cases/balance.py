"""What a user has left: the lane their next picture goes to, their recent use, and the daily
allowance (what is left and when it renews). The chat front shows it (/balance), one line per
part, so a part added later (paid credits) is one more field and one more line."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from domain.lanes import Allowance, LaneDecision, LaneRules, allowance_of, plan_lanes, usage_since
from domain.ports import UserStore


@dataclass(frozen=True)
class Balance:
    next_lane: LaneDecision  # where the user's next picture goes now
    recent: int  # pictures in the last ``rules.recent_window_s``
    rules: LaneRules
    allowance: Allowance | None = None  # None: no daily allowance


@dataclass
class ShowBalance:
    store: UserStore
    rules: LaneRules = field(default_factory=LaneRules)
    clock: Callable[[], float] = time.time

    async def __call__(self, user_id: int) -> Balance:
        now = self.clock()
        recent_since, day_since = usage_since(self.rules, now)
        usage = await self.store.usage(user_id, recent_since=recent_since, day_since=day_since)
        [next_lane] = plan_lanes(self.rules, usage, now, 1)
        return Balance(next_lane, usage.recent, self.rules, allowance_of(self.rules, usage, now))
