"""The worker's calibration (domain/speed.py, domain/use_cases/calibrate.py) against a probe whose
cost is known exactly, its cache file, and where its figures go: the policy, the worker's progress
events (a rolling upgrade still reads them) and a fresh bot's wait estimate."""

from __future__ import annotations

import json

import pytest

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.speed_cache import JsonSpeedCache
from adapters.embedded.storage import LocalFolderStorage
from domain.codec import ADDED_FIELDS, decode_event, encode_event
from domain.models import GenerationRequest, Progress, Quality, Stage
from domain.policy import AdaptivePolicy, FixedPolicy
from domain.quality import DEFAULT_PROFILES
from domain.speed import CACHED, EXTRAPOLATED, MEASURED, SCALED, calibration_request, signature
from domain.use_cases import ProcessJobs, SubmitPrompt
from domain.use_cases.calibrate import CalibrateSpeed
from domain.waits import MARGINAL, WaitEstimator

H200 = {"quality": 0.55, "balanced": 0.32, "fast": 0.04}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class LinearProbe:
    """A generator whose cost is known: per 512x512 image, 1 s of text encoders, 0.5 s per prior
    step, 0.8 s per decoder step and 0.3 s of VQGAN and PNG, all growing with the area; it moves
    the clock by what it costs."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.runs: list[GenerationRequest] = []

    def cost(self, r: GenerationRequest) -> float:
        area = r.width * r.height / 512**2
        return area * (1.0 + 0.5 * r.prior_steps + 0.8 * r.decoder_steps + 0.3)

    def speed_identity(self) -> dict[str, str]:
        return {
            "machine": "test CPU x2",
            "model": "m",
            "dtype": "bfloat16",
            "backend": "torch-eager",
            "device": "cpu",
            "dtype_reason": "override=1",
        }

    async def time_one(self, request: GenerationRequest) -> tuple[float, list[float]]:
        self.runs.append(request)
        area = request.width * request.height / 512**2
        t, ends = area * 1.0, []
        for _ in range(request.prior_steps):
            t += 0.5 * area
            ends.append(t)
        for _ in range(request.decoder_steps):
            t += 0.8 * area
            ends.append(t)
        total = t + 0.3 * area
        self.clock.now += total
        return total, ends


def calibration(budget_s: float, cache=None) -> tuple[CalibrateSpeed, LinearProbe, AdaptivePolicy]:
    clock = Clock()
    probe = LinearProbe(clock)
    policy = AdaptivePolicy(dict(H200), profiles=dict(DEFAULT_PROFILES))
    return CalibrateSpeed(probe, dict(DEFAULT_PROFILES), policy, cache, budget_s=budget_s, clock=clock), probe, policy


def truth(probe: LinearProbe) -> dict[str, float]:
    return {n: probe.cost(calibration_request(p, 1024, 1024)) for n, p in DEFAULT_PROFILES.items()}


async def test_with_time_enough_every_profile_is_timed_in_full():
    calibrate, probe, policy = calibration(budget_s=10_000)
    speed = await calibrate()
    assert speed.sources == {"quality": MEASURED, "balanced": MEASURED, "fast": MEASURED}
    assert speed.seconds_per_image == pytest.approx(truth(probe))
    assert policy.seconds_per_image == speed.seconds_per_image  # the policy starts from them
    # the cheapest first: a probe of fast (2 + 2 steps at 512), then fast, balanced, quality in full
    assert [(r.width, r.prior_steps, r.decoder_steps) for r in probe.runs] == [
        (512, 2, 2),
        (512, 8, 4),
        (1024, 16, 8),
        (1024, 29, 12),
    ]


async def test_a_short_budget_extrapolates_from_two_steps_exactly():
    budget = 60.0  # fast in full fits (~7.5 s); balanced (~47 s) fits once, quality (~78 s) does not
    calibrate, probe, _ = calibration(budget_s=budget)
    speed = await calibrate()
    assert speed.sources["fast"] == MEASURED
    assert speed.sources["quality"] in (EXTRAPOLATED, SCALED)
    # per step times are constant here, so extrapolating and scaling are exact
    assert speed.seconds_per_image == pytest.approx(truth(probe))
    spent = sum(probe.cost(r) for r in probe.runs)
    assert spent <= budget + probe.cost(probe.runs[0])  # only the first, warming probe may overrun


async def test_no_budget_times_the_cheapest_profile_twice_and_scales_the_rest():
    calibrate, probe, _ = calibration(budget_s=0)
    speed = await calibrate()
    assert len(probe.runs) == 2 and probe.runs[0] == probe.runs[1]  # a cold probe, then a warm one
    assert speed.sources == {"fast": EXTRAPOLATED, "balanced": SCALED, "quality": SCALED}
    assert speed.seconds_per_image == pytest.approx(truth(probe))


async def test_scaled_guesses_are_not_cached(tmp_path):
    path = tmp_path / "speed.json"
    hurried, _, _ = calibration(0, JsonSpeedCache(path))
    await hurried()
    [entry] = json.loads(path.read_text())["entries"].values()
    assert list(entry["figures"]) == [signature(calibration_request(DEFAULT_PROFILES["fast"], 1024, 1024))]
    patient, _probe, _ = calibration(10_000, JsonSpeedCache(path))
    speed = await patient()
    assert speed.sources == {"fast": CACHED, "balanced": MEASURED, "quality": MEASURED}


async def test_the_cache_file_serves_a_restart_and_a_changed_profile_is_timed_again(tmp_path):
    path = tmp_path / "speed.json"
    first, probe, _ = calibration(10_000, JsonSpeedCache(path))
    figures = (await first()).seconds_per_image
    entries = json.loads(path.read_text())["entries"]
    [key] = entries
    assert json.loads(key) == {"backend": "torch-eager", "dtype": "bfloat16", "machine": "test CPU x2", "model": "m"}
    again, probe, policy = calibration(10_000, JsonSpeedCache(path))
    speed = await again()
    assert probe.runs == [] and set(speed.sources.values()) == {CACHED}
    assert policy.seconds_per_image == figures
    changed = dict(DEFAULT_PROFILES)
    changed["fast"] = DEFAULT_PROFILES["fast"].__class__("fast", prior_steps=6, decoder_steps=4, max_side=512)
    third, probe, _ = calibration(10_000, JsonSpeedCache(path))
    third.profiles = changed
    speed = await third()
    assert speed.sources == {"quality": CACHED, "balanced": CACHED, "fast": MEASURED}
    assert {signature(r) for r in probe.runs} >= {signature(calibration_request(changed["fast"], 1024, 1024))}


async def test_an_unreadable_cache_means_timing_again(tmp_path):
    path = tmp_path / "speed.json"
    path.write_text("{not json")
    calibrate, probe, _ = calibration(10_000, JsonSpeedCache(path))
    speed = await calibrate()
    assert set(speed.sources.values()) == {MEASURED} and probe.runs
    assert json.loads(path.read_text())["version"] == 1  # written afresh


async def test_the_worker_tells_its_figure_on_its_progress_events(tmp_path):
    queue, storage = MemoryJobQueue(), LocalFolderStorage(tmp_path)
    await queue.start()
    await storage.start()
    policy = AdaptivePolicy(dict(H200), profiles=dict(DEFAULT_PROFILES))
    policy.calibrate({"quality": 160.0, "balanced": 90.0, "fast": 12.5})
    submit = SubmitPrompt(queue, default_width=512, default_height=512)
    await submit(user_id=1, chat_id=1, prompt="a fox", quality=Quality.FAST)
    worker = ProcessJobs(queue, FakeGenerator(), storage, policy=policy, progress_interval_s=0.0)
    assert await worker.run_once() == 1
    events = [d.message for d in await queue.receive_events(100, 0.2)]
    started = [e for e in events if isinstance(e, Progress) and e.stage == Stage.STARTED]
    generating = [e for e in events if isinstance(e, Progress) and e.stage == Stage.GENERATING]
    assert started and generating
    assert {e.seconds_per_image for e in started + generating} == {12.5}


def test_the_figure_travels_only_when_known():
    """A bot of the previous release refuses unknown fields: the figure is left out while 0."""
    plain = Progress(job_id="j", user_id=1, chat_id=1, stage=Stage.STARTED)
    assert not ADDED_FIELDS[Progress] & json.loads(encode_event(plain))["data"].keys()
    told = plain.model_copy(update={"seconds_per_image": 12.5})
    assert decode_event(encode_event(told)).seconds_per_image == 12.5


def test_a_fresh_bot_estimates_from_the_workers_own_figure():
    est = WaitEstimator(max_batch=1)
    assert est.wait_s(2, 1000.0) is None  # nothing heard yet
    est.started("w", "j1", 1000.0, seconds_per_image=12.0)  # its first batch, no result yet
    # the running batch (12 s), then the one ahead and mine, one image each (the places in line
    # count the picture being drawn)
    assert est.wait_s(2, 1000.0) == pytest.approx(12.0 * 3)
    assert est.wait_s(1, 1000.0) == pytest.approx(12.0 * 2)
    assert est.batch_s(4, 1000.0) == pytest.approx(12.0 * (1 - MARGINAL + MARGINAL * 4))
    # once a batch is seen, what it took wins
    est.finished("w", "j1", started_at=1000.0, finished_at=1020.0, generation_s=19.0)
    assert est.batch_s(1, 1030.0) == pytest.approx(20.0)


def test_the_fixed_policy_keeps_figures_to_tell():
    policy = FixedPolicy(dict(DEFAULT_PROFILES))
    assert policy.estimate("fast") is None
    policy.calibrate({"fast": 10.0})
    policy.observe("fast", 2, 30.0)  # 15 s per image, smoothed
    assert policy.estimate("fast") == pytest.approx(10.0 + 0.3 * 5.0)


def test_the_adaptive_policy_never_tells_another_devices_figure():
    # CALIBRATION=off (or a generator that cannot time itself): SECONDS_PER_IMAGE are an H200's.
    # The policy decides with them until it measures, but tells the bots nothing it did not time
    # or measure (their wait estimates say "not known yet" rather than an H200's seconds), and
    # its first measurement replaces the H200 figure instead of being smoothed into it.
    policy = AdaptivePolicy({"quality": 0.55, "balanced": 0.32, "fast": 0.04})
    assert policy.estimate("fast") is None
    policy.observe("fast", 1, 19.0)
    assert policy.estimate("fast") == pytest.approx(19.0)
    assert policy.estimate("quality") is None
    policy.calibrate({"quality": 160.0})
    assert policy.estimate("quality") == pytest.approx(160.0)


def test_the_composition_root_calibrates_only_a_generator_that_can_time_itself(tmp_path):
    from config.bootstrap import Components
    from config.settings import Settings

    def parts(**values) -> Components:
        return Components(Settings(_env_file=None, metrics_enabled=False, tiny_model_dir=tmp_path, **values))

    tiny = parts(generator="tiny", calibration_cache=tmp_path / "speed.json", calibration_budget_s=30)
    calibrate = tiny.calibrate
    assert isinstance(calibrate, CalibrateSpeed)
    assert calibrate.probe is tiny.generator and calibrate.policy is tiny.policy
    assert calibrate.budget_s == 30 and calibrate.cache.path == tmp_path / "speed.json"
    assert parts(generator="tiny", calibration="off").calibrate is None
    assert parts(generator="fake").calibrate is None  # it cannot time itself
