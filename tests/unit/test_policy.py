"""The adaptive quality policy and fair batching: pure functions, unit-tested."""

from __future__ import annotations

import pytest

from domain.models import Quality
from domain.params import COMMON_RATIOS, parse_aspect, size_for_aspect
from domain.policy import REASON_BUSY, REASON_QUIET, REASON_REQUESTED, AdaptivePolicy, FixedPolicy
from domain.quality import DEFAULT_PROFILES, QualityProfile
from domain.scheduling import pick_batch
from domain.validation import Limits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def policy(clock: Clock, **kw) -> AdaptivePolicy:
    # seconds per image: quality 10, balanced 4, fast 1; target 60 s; one worker
    return AdaptivePolicy({"quality": 10.0, "balanced": 4.0, "fast": 1.0}, target_wait_s=60, clock=clock, **kw)


def test_quiet_service_gets_full_quality():
    p = policy(Clock())
    profile, reason = p.choose(Quality.AUTO, backlog=2)
    assert (profile.name, reason) == ("quality", REASON_QUIET)


@pytest.mark.parametrize(
    ("backlog", "expected"),
    [(5, "quality"), (6, "quality"), (7, "balanced"), (15, "balanced"), (16, "fast"), (500, "fast")],
)
def test_busier_service_gets_faster_profiles(backlog, expected):
    assert policy(Clock()).choose(Quality.AUTO, backlog)[0].name == expected


def test_hysteresis_upgrades_only_with_room_and_after_dwell():
    clock = Clock()
    p = policy(clock, min_dwell_s=10, upgrade_margin=0.6)
    assert p.choose(Quality.AUTO, 20)[0].name == "fast"
    clock.now = 5
    assert p.choose(Quality.AUTO, 5)[0].name == "fast"  # dwell not over yet
    clock.now = 20
    # balanced would wait 5*4 = 20 s <= 36 s; quality 50 s > 36 s: one step up, not two
    assert p.choose(Quality.AUTO, 5)[0].name == "balanced"
    clock.now = 40
    assert p.choose(Quality.AUTO, 3)[0].name == "quality"  # 30 s <= 36 s
    assert p.choose(Quality.AUTO, 7)[0].name == "balanced"  # degrade at once: 70 s > 60 s


def test_no_flapping_around_the_threshold():
    clock = Clock()
    p = policy(clock, min_dwell_s=0)
    names = []
    for t, backlog in enumerate([7, 6, 7, 6, 7, 6]):
        clock.now = t
        names.append(p.choose(Quality.AUTO, backlog)[0].name)
    assert names == ["balanced"] * 6


def test_user_preference_is_honoured_within_the_policy():
    p = policy(Clock())
    assert p.choose(Quality.FAST, 0) == (DEFAULT_PROFILES["fast"], REASON_REQUESTED)
    assert p.choose(Quality.QUALITY, 0) == (DEFAULT_PROFILES["quality"], REASON_REQUESTED)
    assert p.choose(Quality.QUALITY, 10) == (DEFAULT_PROFILES["balanced"], REASON_BUSY)
    assert p.choose(Quality.FAST, 10) == (DEFAULT_PROFILES["fast"], REASON_REQUESTED)


def test_a_paid_job_keeps_the_quality_it_asks_for_under_load():
    """A credit bought with Stars is one full-quality picture: the load lowers the free jobs, not
    a paid one (within the ladder: a capped worker still cannot make what it was capped off)."""
    p = policy(Clock())
    assert p.choose(Quality.QUALITY, 500) == (DEFAULT_PROFILES["fast"], REASON_BUSY)
    assert p.choose(Quality.QUALITY, 500, paid=True) == (DEFAULT_PROFILES["quality"], REASON_REQUESTED)
    fixed = FixedPolicy(dict(DEFAULT_PROFILES), default="fast", honour_requests=False)
    assert fixed.choose(Quality.QUALITY, 0)[0].name == "fast"
    assert fixed.choose(Quality.QUALITY, 0, paid=True)[0].name == "quality"


def test_measurements_move_the_estimate():
    p = policy(Clock(), smoothing=0.5)
    assert p.estimate("quality") is None  # the configured figure is no figure of this worker
    p.observe("quality", batch_size=4, seconds=40.0)  # 10 s/image measured: it replaces the start
    assert p.seconds_per_image["quality"] == pytest.approx(10.0) == p.estimate("quality")
    p.observe("quality", batch_size=4, seconds=8.0)  # 2 s/image measured: smoothed from here on
    assert p.seconds_per_image["quality"] == pytest.approx(6.0)
    p.observe("quality", batch_size=0, seconds=1.0)  # ignored
    assert p.seconds_per_image["quality"] == pytest.approx(6.0)
    assert p.choose(Quality.AUTO, 9)[0].name == "quality"  # 54 s now fits


def test_more_workers_share_the_backlog():
    assert policy(Clock(), workers=3).choose(Quality.AUTO, 15)[0].name == "quality"


def test_missing_estimates_are_refused():
    with pytest.raises(ValueError):
        AdaptivePolicy({"quality": 1.0})


def test_fixed_policy():
    fixed = FixedPolicy(DEFAULT_PROFILES, default="fast", honour_requests=False)
    assert fixed.choose(Quality.QUALITY, 0)[0].name == "fast"
    assert FixedPolicy(DEFAULT_PROFILES).choose(Quality.BALANCED, 99)[0].name == "balanced"


def test_fit_size_keeps_aspect_and_multiples():
    fast = QualityProfile("fast", 8, 4, max_side=512)
    assert fast.fit_size(1024, 1024) == (512, 512)
    assert fast.fit_size(1536, 640) == (896, 384)  # 2.33 for 2.4: about 512 x 512 pixels, the shape kept
    assert fast.fit_size(1408, 768) == (896, 512)  # the --ar 16:9 --q fast of the issue: 7:4, not 2:1
    assert fast.fit_size(384, 256) == (384, 256)  # within the budget: as asked


# Every ratio offered on a button, and the other usual ones.
RATIOS = [*COMMON_RATIOS, "2:1", "1:2", "5:4", "4:5", "21:9", "9:21", "3:1", "1:3"]


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("area", [1024 * 1024, 512 * 384, 1536 * 1536])  # DEFAULT_WIDTH x DEFAULT_HEIGHT
@pytest.mark.parametrize("profile", list(DEFAULT_PROFILES.values()), ids=lambda p: p.name)
def test_every_profile_keeps_the_ratio_asked_for_within_5_percent(ratio, area, profile):
    """The bot sizes the job from ``--ar`` (``size_for_aspect``), the worker fits it to the
    profile (``fit_size``): the picture's shape stays within 5 % of the one asked for, in the
    model's steps of 128, no larger than the job, with about the profile's pixels."""
    limits = Limits()
    aspect = parse_aspect(ratio, limits)
    width, height = size_for_aspect(aspect, limits, area)
    w, h = profile.fit_size(width, height, aspect.ratio)  # the job carries the ratio asked for
    assert abs(w / h / aspect.ratio - 1) <= 0.05 + 1e-9, (ratio, (width, height), (w, h))
    assert w % 128 == 0 and h % 128 == 0 and w >= 128 and h >= 128
    assert w <= width and h <= height
    budget = profile.max_side**2
    assert w * h <= max(budget * 2, width * height if width * height <= budget else 0)


def test_the_ratio_asked_for_is_what_is_kept_not_the_jobs_own_approximation():
    """16:9 with a small default size is 896x512 (7:4, 1.6 % off); fitting 7:4 alone to the fast
    profile could take 640x384 (5:3, 4.8 % off 7:4 but 6.25 % off 16:9)."""
    fast = DEFAULT_PROFILES[Quality.FAST]
    assert fast.fit_size(896, 512) == (640, 384)
    assert fast.fit_size(896, 512, 16 / 9) == (896, 512)


def test_fitting_never_moves_a_jobs_shape_more_than_5_percent():
    """Whatever size a job asks for (any multiple of 128 within the limits), every profile keeps
    its shape within 5 %, and does not shrink a job that is within its budget."""
    limits = Limits()
    sides = range(limits.min_side, limits.max_side + 1, limits.size_multiple)
    for profile in DEFAULT_PROFILES.values():
        for width in sides:
            for height in sides:
                w, h = profile.fit_size(width, height)
                assert abs(w / h / (width / height) - 1) <= 0.05 + 1e-9, (profile.name, width, height, w, h)
                assert w <= width and h <= height
                if width * height <= profile.max_side**2:
                    assert (w, h) == (width, height)


@pytest.mark.parametrize(
    "fields", [{"prior_steps": 0}, {"decoder_steps": -1}, {"max_side": 64}, {"prior_guidance": -1.0}]
)
def test_a_profile_with_impossible_steps_or_size_is_refused(fields):
    values = {"name": "bad", "prior_steps": 8, "decoder_steps": 4, "max_side": 512, **fields}
    with pytest.raises(ValueError, match="quality profile 'bad'"):
        QualityProfile(**values)


def test_pick_batch_takes_the_oldest_group_and_rotates_users():
    items = [("A", 1), ("B", 2), ("A", 1), ("A", 1), ("A", 2), ("A", 3), ("B", 1)]
    batch, rest = pick_batch(items, group=lambda x: x[0], user=lambda x: x[1], limit=3)
    assert batch == [("A", 1), ("A", 2), ("A", 3)]
    assert rest == [("B", 2), ("A", 1), ("A", 1), ("B", 1)]
    assert pick_batch([], group=len, user=len, limit=3) == ([], [])


def test_quality_cap_makes_cpu_workers_settings_mean_what_they_say():
    """The chart's CPU workers: QUALITY_CAP=fast with the default adaptive policy (and with the
    fixed one) makes every job fast, however quiet the queue and whatever the user asked for;
    the caption's reason says why. Without the cap a quiet queue got full quality (1536 px)."""
    from config.factories import profiles, quality_policy
    from config.settings import Settings
    from domain.policy import REASON_CAPPED

    for policy_name in ("adaptive", "fixed"):
        settings = Settings(_env_file=None, quality_policy=policy_name, quality_cap="fast")
        chosen = quality_policy(settings, profiles(settings))
        for requested in Quality:
            for backlog in (0, 1, 50, 500):
                profile, reason = chosen.choose(requested, backlog)
                assert profile.name == "fast", (policy_name, requested, backlog)
                expected = REASON_CAPPED if requested in ("quality", "balanced") else reason
                assert reason == expected
                assert reason in (REASON_CAPPED, REASON_QUIET, REASON_REQUESTED)
    uncapped = quality_policy(Settings(_env_file=None), profiles(Settings(_env_file=None)))
    assert uncapped.choose(Quality.AUTO, 1)[0].name == "quality"  # what the chart's values got before
    capped_balanced = quality_policy(*(lambda s: (s, profiles(s)))(Settings(_env_file=None, quality_cap="balanced")))
    assert capped_balanced.choose(Quality.QUALITY, 0)[0].name == "balanced"
    assert capped_balanced.choose(Quality.FAST, 0) == (DEFAULT_PROFILES[Quality.FAST], REASON_REQUESTED)
    with pytest.raises(ValueError):
        Settings(_env_file=None, quality_cap="best")


def test_every_quality_reason_has_a_caption_in_both_languages():
    from pathlib import Path

    from domain import policy as module

    reasons = {v for k, v in vars(module).items() if k.startswith("REASON_")}
    for lang in ("en", "ru"):
        text = (Path(__file__).resolve().parents[2] / f"adapters/telegram/locales/{lang}/bot.ftl").read_text()
        assert all(f"quality-reason-{r} = " in text for r in reasons), lang
