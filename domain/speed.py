"""How fast this worker makes an image of each quality profile: pure rules, no I/O.

A worker times itself at start (``domain.use_cases.calibrate``): one image per profile, at the
size a default job gets in that profile, with the profile's steps, or with two steps of each model
and the rest extrapolated from the time between steps when the full run would not fit the time
budget. The figures replace the adaptive policy's starting estimates (which are another device's
otherwise) and are kept in a cache for the same machine, model, dtype and backend, so a restart
does not time again.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.models import GenerationRequest
from domain.quality import QualityProfile

PROBE_STEPS = 2  # steps of each model in a probe: the fewest that show the time between steps
CALIBRATION_PROMPT = "a calibration photo of a red fox in a snowy forest"

# Where the figures came from (the log and the metrics' label).
MEASURED = "measured"  # timed at the profile's steps
EXTRAPOLATED = "extrapolated"  # timed with fewer steps, the rest from the time per step
SCALED = "scaled"  # out of time: scaled by pixels and steps from another profile's timing
CACHED = "cached"  # read from the cache of an earlier start on the same machine


@dataclass(frozen=True)
class Timed:
    """One timed generator call of one image: the whole call (text encoders to PNG), and when
    each step ended (seconds since the call began: the prior's steps, then the decoder's)."""

    request: GenerationRequest
    total_s: float
    step_ends: tuple[float, ...] = ()

    def _median_gap(self, ends: Sequence[float]) -> float:
        gaps = [b - a for a, b in itertools.pairwise(ends)]
        return statistics.median(gaps) if gaps else 0.0

    @property
    def prior_step_s(self) -> float:
        """Seconds per prior step (the time between two of its steps; 0 if it made one)."""
        return self._median_gap(self.step_ends[: self.request.prior_steps])

    @property
    def decoder_step_s(self) -> float:
        return self._median_gap(self.step_ends[self.request.prior_steps :])

    def estimate(self, request: GenerationRequest) -> float:
        """Seconds ``request`` takes: this call's time plus (or minus) the steps it lacks, scaled
        by pixels when the sizes differ (the steps, the VQGAN and the PNG grow with the area)."""
        mine = self.request
        same_size = self.total_s + (
            (request.prior_steps - mine.prior_steps) * self.prior_step_s
            + (request.decoder_steps - mine.decoder_steps) * self.decoder_step_s
        )
        area = (request.width * request.height) / (mine.width * mine.height)
        return max(1e-6, same_size * area)


def calibration_request(profile: QualityProfile, width: int, height: int) -> GenerationRequest:
    """The image a default job (``width`` x ``height``) gets in ``profile``."""
    fitted_width, fitted_height = profile.fit_size(width, height)
    return GenerationRequest(
        prompt=CALIBRATION_PROMPT,
        width=fitted_width,
        height=fitted_height,
        seed=0,
        prior_steps=profile.prior_steps,
        decoder_steps=profile.decoder_steps,
        prior_guidance=profile.prior_guidance,
        decoder_guidance=profile.decoder_guidance,
    )


def probe_of(request: GenerationRequest) -> GenerationRequest:
    """``request`` with at most ``PROBE_STEPS`` steps of each model."""
    return request.model_copy(
        update={
            "prior_steps": min(request.prior_steps, PROBE_STEPS),
            "decoder_steps": min(request.decoder_steps, PROBE_STEPS),
        }
    )


def cost_order(request: GenerationRequest) -> float:
    """A rough cost, to time the cheapest profile first (it warms the model up)."""
    return request.width * request.height * (2 * request.prior_steps + request.decoder_steps)


def signature(request: GenerationRequest) -> str:
    """What a cached figure is for: size, steps and guidance (a changed profile is timed again)."""
    return (
        f"{request.width}x{request.height}:{request.prior_steps}+{request.decoder_steps}"
        f":g{request.prior_guidance:g}/{request.decoder_guidance:g}"
    )


def identity_key(identity: Mapping[str, str]) -> str:
    """The cache key of a worker's machine, model, dtype and backend."""
    return json.dumps(dict(sorted(identity.items())), ensure_ascii=False)


@dataclass(frozen=True)
class WorkerSpeed:
    """A worker's own seconds per image of each profile, and how each figure was found."""

    seconds_per_image: dict[str, float]
    sources: dict[str, str]
    identity: dict[str, str]
    calibration_s: float = 0.0  # time spent timing (0 when all came from the cache)
