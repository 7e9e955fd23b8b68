"""Calibrate the worker at start: how fast it makes an image of each profile, on its own machine.

The adaptive policy's starting seconds per image would otherwise be ``SECONDS_PER_IMAGE``, figures
of another device (an H200): a CPU worker would promise seconds and take minutes. After the model
is loaded and warmed up, ``CalibrateSpeed`` times one image per profile (the rules are in
``domain.speed``) within ``budget_s``, or reads the figures an earlier start on the same machine,
model, dtype and backend left in the cache; the figures go to the policy (which tells them to the
bots on its progress events) and to the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from domain.models import GenerationRequest
from domain.ports import Metrics, QualityPolicy, SpeedCache, SpeedProbe
from domain.quality import QualityProfile
from domain.speed import (
    CACHED,
    EXTRAPOLATED,
    MEASURED,
    SCALED,
    Timed,
    WorkerSpeed,
    calibration_request,
    cost_order,
    identity_key,
    probe_of,
    signature,
)
from domain.telemetry import NoMetrics

log = logging.getLogger(__name__)


@dataclass
class CalibrateSpeed:
    """Times ``probe`` once per profile (or reads ``cache``) and feeds the figures to ``policy``.

    ``width`` x ``height``: a default job's size, fitted to each profile as a job's would be.
    ``budget_s`` bounds the timing: a profile whose full run would not fit what is left is timed
    with two steps of each model and extrapolated, or, when even that would not fit, scaled by
    pixels and steps from the last timing (the cheapest profile's probe always runs)."""

    probe: SpeedProbe
    profiles: Mapping[str, QualityProfile]
    policy: QualityPolicy
    cache: SpeedCache | None = None
    width: int = 1024
    height: int = 1024
    budget_s: float = 120.0
    metrics: Metrics = field(default_factory=NoMetrics)
    clock: Callable[[], float] = time.perf_counter

    async def __call__(self) -> WorkerSpeed:
        identity = self.probe.speed_identity()
        log.info(
            "generator on %s (%s), dtype %s (%s), backend %s",
            identity.get("device", "?"),
            identity.get("machine", "?"),
            identity.get("dtype", "?"),
            identity.get("dtype_reason", "?"),
            identity.get("backend", "?"),
        )
        self.metrics.generator_info(identity)
        key = identity_key({k: identity.get(k, "") for k in ("machine", "model", "dtype", "backend")})
        requests = {name: calibration_request(p, self.width, self.height) for name, p in self.profiles.items()}
        cached = await self._load(key)
        figures: dict[str, float] = {}
        sources: dict[str, str] = {}
        for name, request in requests.items():
            if signature(request) in cached:
                figures[name], sources[name] = cached[signature(request)], CACHED
        todo = {name: r for name, r in requests.items() if name not in figures}
        started = self.clock()
        if todo:
            measured = await self._time(todo)
            for name, (seconds, source) in measured.items():
                figures[name], sources[name] = seconds, source
            # A scaled figure is a guess from another profile: a later start with time to spare times it.
            timed = {signature(todo[n]): figures[n] for n in todo if sources[n] != SCALED}
            if self.cache is not None and timed:
                try:
                    await self.cache.save(key, {**cached, **timed})
                except Exception as exc:  # the figures still serve this run
                    log.warning("could not keep the calibration: %s", type(exc).__name__)
        spent = self.clock() - started if todo else 0.0
        self.policy.calibrate(figures)
        self.metrics.worker_speed(figures, sources)
        log.info(
            "worker speed, seconds per image: %s (calibration %.1fs)",
            ", ".join(f"{n} {figures[n]:.3g} ({sources[n]})" for n in requests),
            spent,
        )
        return WorkerSpeed(figures, sources, dict(identity), spent)

    async def _load(self, key: str) -> dict[str, float]:
        if self.cache is None:
            return {}
        try:
            return dict(await self.cache.load(key))
        except Exception as exc:  # an unreadable cache: time again
            log.warning("could not read the calibration cache: %s", type(exc).__name__)
            return {}

    async def _run(self, request: GenerationRequest) -> Timed:
        total, ends = await self.probe.time_one(request)
        return Timed(request, total, tuple(ends))

    async def _time(self, todo: Mapping[str, GenerationRequest]) -> dict[str, tuple[float, str]]:
        deadline = self.clock() + self.budget_s
        out: dict[str, tuple[float, str]] = {}
        last: Timed | None = None
        for name, request in sorted(todo.items(), key=lambda item: cost_order(item[1])):
            probe = probe_of(request)
            first = last is None
            if last is None:  # the cheapest profile: a probe warms the model up and predicts the rest
                last = await self._run(probe)
            left = deadline - self.clock()
            if last.estimate(request) <= left:
                last = await self._run(request)
                out[name] = (last.total_s, MEASURED)
            elif first or last.estimate(probe) <= left:  # the first profile is always timed warm
                last = await self._run(probe)
                out[name] = (last.estimate(request), MEASURED if probe == request else EXTRAPOLATED)
            else:
                out[name] = (last.estimate(request), SCALED)
        return out
