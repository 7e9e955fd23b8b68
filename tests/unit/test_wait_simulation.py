"""Stated waits on the real architecture's timings: the line simulated with measured batch-time
curves (bench/wait_simulation.py) through the bot's own estimator and places in line. At least
90 % of users are told a wait within 2x of the one they get, in the issue's run (20 users at
once after two warm-up prompts) and under steady and bursty traffic; places run in the order the
pictures come."""

from __future__ import annotations

import itertools

import pytest

from bench.wait_simulation import CURVES, SCENARIOS, Line, share_within_2x, summary


@pytest.mark.parametrize("curve", sorted(CURVES))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_nine_in_ten_are_told_a_wait_within_2x(curve: str, scenario: str):
    batch_s, max_batch = CURVES[curve]
    rows = SCENARIOS[scenario](Line(batch_s, max_batch))
    assert all(r.actual_s > 0 and r.stated_s is not None for r in rows)
    assert share_within_2x(rows) >= 0.9, summary(rows)


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_a_burst_reads_its_places_in_the_order_its_pictures_come(curve: str):
    batch_s, max_batch = CURVES[curve]
    rows = SCENARIOS["20 at once after 2 warm-up prompts"](Line(batch_s, max_batch))
    assert sorted(r.position for r in rows) == list(range(1, 21))
    by_place = sorted(rows, key=lambda r: r.position)
    # a later place never gets its picture before an earlier one's batch (pictures of one batch
    # leave at the outbound rate, a tenth of a second apart)
    assert all(b.actual_s >= a.actual_s - 0.5 for a, b in itertools.pairwise(by_place))


def test_the_simulation_can_tell_a_bad_estimate():
    # The check above is no formality: a bot that takes each batch to be a lone picture's time
    # (batches cost nothing more per image) is told apart on the GPU curve.
    batch_s, max_batch = CURVES["h200"]
    line = Line(batch_s, max_batch)
    line.estimator.batch_s = lambda size, now: 0.555  # type: ignore[method-assign]
    rows = SCENARIOS["20 at once after 2 warm-up prompts"](line)
    assert share_within_2x(rows) < 0.9
