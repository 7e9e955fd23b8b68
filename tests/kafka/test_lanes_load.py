"""Lanes on the real broker, through the worker (``ProcessJobs`` on ``KafkaJobQueue``, the fake
generator taking a second a batch): a priority job jumps a backlog of 200 relaxed jobs, waiting
at most one batch longer than on an idle service, and the relaxed lane keeps its guaranteed share
under a burst of priority work. The figures come from bench/lanes_load.py's ``measure`` (the
script prints them for docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from bench.lanes_load import measure

pytestmark = pytest.mark.kafka

# What a busy 2-core machine adds to a wait beyond the batch itself: fetch, commit and scheduling.
SLACK_S = 0.5


async def test_a_priority_job_waits_at_most_one_batch_behind_200_relaxed_and_relaxed_keeps_its_share(kafka_bootstrap):
    figures = await measure(kafka_bootstrap, backlog=200, batch_s=1.0, max_batch=4, relaxed_every=4, probes=5)
    print(figures.table())
    assert len(figures.idle_waits) == len(figures.backlog_waits) == 5
    assert 0.8 <= figures.period_s <= 3.0, figures.table()  # one batch: the unit of the bound
    # Behind the backlog, the job waits for the batch in progress at most: FIFO would be 50 batches.
    bound = max(figures.idle_waits) + figures.period_s + SLACK_S
    assert max(figures.backlog_waits) <= bound, figures.table()
    # The share: while the priority burst waited, at least one slot in 4 was the relaxed lane's.
    assert figures.share_batches >= 6, figures.table()
    assert figures.share_jobs["priority"] == 24  # the whole burst, in the span
    assert figures.share_jobs["relaxed"] * 4 >= sum(figures.share_jobs.values()), figures.table()
    assert figures.share_jobs["relaxed"] <= figures.share_batches * 2, figures.table()  # priority first all the same
