"""Adaptive quality: full quality when the service is quiet, faster profiles when it is busy.

A pure function of measured load (queue backlog, workers, measured seconds per image of each
profile) against a wait target, with hysteresis so that it does not flap. The worker feeds it
its measurements; the simulation in ``bench/simulate_quality.py`` runs the same class.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from domain.models import Lane, Quality
from domain.quality import DEFAULT_PROFILES, LADDER, QualityProfile

# Reasons, shown (translated) in the caption.
REASON_REQUESTED = "requested"  # the user's own choice, and the load allows it
REASON_QUIET = "quiet"  # automatic, and the service is quiet enough for it
REASON_BUSY = "busy"  # a faster profile than wanted, because of the load
REASON_CAPPED = "capped"  # a faster profile than asked for: these workers make nothing slower


def capped_ladder(cap: str | None, ladder: Sequence[str] = LADDER) -> tuple[str, ...]:
    """The ladder from ``cap`` down (``QUALITY_CAP``: e.g. CPU workers that make only ``fast``,
    whose full quality would take many minutes per picture); the whole ladder without a cap."""
    if not cap:
        return tuple(ladder)
    if cap not in ladder:
        raise ValueError(f"QUALITY_CAP {cap!r} is not one of {', '.join(ladder)}")
    return tuple(ladder[ladder.index(cap) :])


@dataclass
class AdaptivePolicy:
    """Chooses the best profile whose expected wait meets ``target_wait_s``.

    expected wait (profile p) = backlog x seconds_per_image(p) / workers

    Downgrades at once when the current level misses the target; upgrades only when the better
    level would meet ``upgrade_margin`` x target and ``min_dwell_s`` has passed since the last
    change (hysteresis).

    Each lane (``domain.lanes``) has a level of its own, judged by the backlog its jobs wait
    behind: the worker passes a priority job the priority lane's backlog alone and a relaxed job
    the whole backlog, so under load the relaxed lane degrades first and the priority lane keeps
    full quality longest.
    """

    seconds_per_image: dict[str, float]
    target_wait_s: float = 60.0
    profiles: dict[str, QualityProfile] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    ladder: Sequence[str] = LADDER
    workers: int = 1
    upgrade_margin: float = 0.6
    min_dwell_s: float = 10.0
    smoothing: float = 0.3
    clock: Callable[[], float] = time.monotonic
    cap: str = ""  # QUALITY_CAP: the best profile made (``capped_ladder``); empty: none

    def __post_init__(self) -> None:
        self.ladder = capped_ladder(self.cap, self.ladder)
        missing = [p for p in self.ladder if p not in self.seconds_per_image]
        if missing:
            raise ValueError(f"no service time estimate for profiles {missing}")
        # index into the ladder (0 is the best quality) and when it last changed, per lane
        self._levels: dict[Lane, tuple[int, float]] = {}
        # Profiles whose figure is this worker's own (timed at its start, or measured since): the
        # others still hold SECONDS_PER_IMAGE, another device's figures.
        self._own: set[str] = set()

    # --- measurements ----------------------------------------------------------------------
    def observe(self, profile: str, batch_size: int, seconds: float) -> None:
        """A batch of ``batch_size`` images of ``profile`` took ``seconds``."""
        if batch_size <= 0 or seconds <= 0 or profile not in self.seconds_per_image:
            return
        per_image = seconds / batch_size
        old = self.seconds_per_image[profile]
        if profile not in self._own:  # the first measurement replaces another device's figure
            old = per_image
            self._own.add(profile)
        self.seconds_per_image[profile] = old + self.smoothing * (per_image - old)

    def calibrate(self, seconds_per_image: Mapping[str, float]) -> None:
        """The worker's own figures, timed at its start (``domain.use_cases.calibrate``): they
        replace the starting estimates (``SECONDS_PER_IMAGE``, another device's figures)."""
        for profile, seconds in seconds_per_image.items():
            if seconds > 0:
                self.seconds_per_image[profile] = seconds
                self._own.add(profile)

    def estimate(self, profile: str) -> float | None:
        """This worker's figure (None while the profile was neither timed nor measured here: the
        starting figure is another device's, and the bots' wait estimates must not take it)."""
        return self.seconds_per_image.get(profile) if profile in self._own else None

    def expected_wait(self, profile: str, backlog: int) -> float:
        return backlog * self.seconds_per_image[profile] / max(1, self.workers)

    # --- decision -------------------------------------------------------------------------
    @property
    def level(self) -> int:
        """The priority lane's level now."""
        return self._levels.get(Lane.PRIORITY, (0, 0.0))[0]

    def allowed_level(self, backlog: int, lane: Lane = Lane.PRIORITY) -> int:
        """The best ladder level the load allows now for ``lane`` (updates its hysteresis state)."""
        now = self.clock()
        level, changed_at = self._levels.get(lane, (0, -float("inf")))
        fits = [self.expected_wait(p, backlog) <= self.target_wait_s for p in self.ladder]
        best = next((i for i, ok in enumerate(fits) if ok), len(self.ladder) - 1)
        if best > level:  # too slow for the load: degrade at once
            level, changed_at = best, now
        elif best < level and now - changed_at >= self.min_dwell_s:
            # Quieter: step up only to a level that meets the target with room to spare.
            for i in range(best, level):
                wait = self.expected_wait(self.ladder[i], backlog)
                if wait <= self.upgrade_margin * self.target_wait_s:
                    level, changed_at = i, now
                    break
        self._levels[lane] = (level, changed_at)
        return level

    def choose(
        self, requested: Quality, backlog: int, lane: Lane = Lane.PRIORITY, *, paid: bool = False
    ) -> tuple[QualityProfile, str]:
        """``backlog``: the jobs a job of ``lane`` waits behind (the worker's ``lane_backlog``).
        ``paid``: a credit bought it the quality it asks for, whatever the load."""
        level = self.allowed_level(backlog, lane)
        allowed = self.ladder[level]
        if requested != Quality.AUTO and requested in self.ladder:
            wanted = self.ladder.index(requested)
            if wanted >= level or paid:  # as fast or faster than the load needs, or paid for: honour it
                return self.profiles[requested], REASON_REQUESTED
            return self.profiles[allowed], REASON_BUSY
        if requested != Quality.AUTO and requested in LADDER:  # above the cap (``capped_ladder``)
            return self.profiles[allowed], REASON_CAPPED
        return self.profiles[allowed], REASON_QUIET if level == 0 else REASON_BUSY


@dataclass
class FixedPolicy:
    """One profile for everything (the baselines of the simulation), or the user's choice."""

    profiles: dict[str, QualityProfile]
    default: str = Quality.QUALITY
    honour_requests: bool = True
    ladder: Sequence[str] = LADDER  # what may be made; requests above it are lowered
    cap: str = ""  # QUALITY_CAP (``capped_ladder``); empty: none
    # Not used to choose: the worker's figures, which it tells the bots (their wait estimates).
    seconds_per_image: dict[str, float] = field(default_factory=dict)
    smoothing: float = 0.3

    def __post_init__(self) -> None:
        self.ladder = capped_ladder(self.cap, self.ladder)
        if self.default in LADDER and self.default not in self.ladder:
            self.default = self.ladder[0]  # the default lowered to the cap

    def observe(self, profile: str, batch_size: int, seconds: float) -> None:
        if batch_size <= 0 or seconds <= 0:
            return
        per_image = seconds / batch_size
        old = self.seconds_per_image.get(profile, per_image)
        self.seconds_per_image[profile] = old + self.smoothing * (per_image - old)

    def calibrate(self, seconds_per_image: Mapping[str, float]) -> None:
        self.seconds_per_image.update({p: s for p, s in seconds_per_image.items() if s > 0})

    def estimate(self, profile: str) -> float | None:
        return self.seconds_per_image.get(profile)

    def choose(
        self, requested: Quality, backlog: int, lane: Lane = Lane.PRIORITY, *, paid: bool = False
    ) -> tuple[QualityProfile, str]:
        if (self.honour_requests or paid) and requested != Quality.AUTO and requested in self.profiles:
            if requested in LADDER and requested not in self.ladder:
                return self.profiles[self.default], REASON_CAPPED
            return self.profiles[requested], REASON_REQUESTED
        return self.profiles[self.default], REASON_QUIET
