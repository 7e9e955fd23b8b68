"""The backlog is measured on a clock, whatever the worker does: while no worker takes jobs (all
busy, or none running) the gauge still says what waits, and a figure that can no longer be
measured ages out of the metrics instead of being reported as current."""

from __future__ import annotations

import asyncio
import time

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from adapters.embedded.queue import MemoryJobQueue
from adapters.otel import metrics as otel_metrics
from adapters.otel.metrics import OtelMetrics
from domain.use_cases import SubmitPrompt
from domain.use_cases.backlog import WatchBacklog
from tests.unit.test_telemetry import points as all_points


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    """The points read now (none at all: an empty export)."""
    if reader.get_metrics_data() is None:
        return {}
    return all_points(reader)


class Unreachable(MemoryJobQueue):
    """A queue whose broker went away: the backlog cannot be measured."""

    broken = False

    async def backlog(self) -> int:
        if self.broken:
            raise ConnectionError("broker unreachable")
        return await super().backlog()


async def test_the_backlog_is_watched_without_a_worker_and_ages_out(monkeypatch):
    reader = InMemoryMetricReader()
    metrics = OtelMetrics(extra_readers=[reader], system_metrics=False)
    queue = Unreachable()
    await queue.start()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    watch = WatchBacklog(queue, metrics, every_s=0.02)
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    try:
        for user in (1, 2, 3):
            await submit(user_id=user, chat_id=user, prompt="a fox")
        for _ in range(100):  # no worker runs: the watch alone measures it
            if [p.value for p in points(reader).get("p2p.consumer.lag", [])] == [3]:
                break
            await asyncio.sleep(0.02)
        assert [p.value for p in points(reader)["p2p.consumer.lag"]] == [3]

        queue.broken = True
        assert await watch.measure() is None
        assert [p.value for p in points(reader)["p2p.consumer.lag"]] == [3]  # measured a moment ago
        monkeypatch.setattr(otel_metrics, "LAG_MAX_AGE_S", 0.0)
        await asyncio.sleep(0.01)
        assert "p2p.consumer.lag" not in points(reader)  # too old: not reported as current
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await queue.stop()


async def test_a_kafka_backlog_measured_too_long_ago_is_unknown():
    """The broker went away a while ago: the queue does not hand out its last figure as current
    (the watch then stops reporting it), and says so at once instead of making a reply wait."""
    from adapters.kafka import lag
    from adapters.kafka.queue import KafkaJobQueue

    queue = KafkaJobQueue("127.0.0.1:1")  # never started: every measurement fails
    queue.lag._known = (time.monotonic() - 2.0, 7)  # measured 2 s ago: it stands
    assert await queue.backlog() == 7
    queue.lag._known = (time.monotonic() - lag.KNOWN_FOR_S - 1, 7)  # measured over a minute ago
    started = time.monotonic()
    try:
        await queue.backlog()
    except lag.BacklogUnknown:
        pass
    else:
        raise AssertionError("a backlog measured over a minute ago was given as current")
    assert time.monotonic() - started < 1.0
    metrics = OtelMetrics(extra_readers=[reader := InMemoryMetricReader()], system_metrics=False)
    assert await WatchBacklog(queue, metrics).measure() is None
    assert "p2p.consumer.lag" not in points(reader)
    await queue.lag.stop_refreshing()
