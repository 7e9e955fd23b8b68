"""Undecodable messages go to the dead-letter topic with the reason, and the consumer goes on; a
poison job (delivered too often) fails honestly."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.storage import LocalFolderStorage
from adapters.otel.metrics import OtelMetrics
from domain.models import ErrorCode, Result
from domain.use_cases import ProcessJobs
from tests.kafka.pipeline import Worker, eventually, make_job, start_bot, start_worker
from tests.use_cases.test_worker_rules import RecordingGenerator

pytestmark = pytest.mark.kafka


async def test_garbage_on_the_requests_topic_is_dead_lettered_and_the_next_job_completes(harness, tmp_path):
    bot = await start_bot(harness.make_queue)
    worker = await start_worker(harness.make_queue, tmp_path / "images", "w1")
    publisher = await harness.new_queue(client_id="publisher")
    job = make_job(1)
    garbage = b"\x89PNG\r\n\x1a\n not a job"
    # Same key as the job, so the same partition: the worker must get past the garbage first.
    await publisher.publish_raw_job(garbage, key=job.job_id.encode())
    await publisher.publish_job(job)

    assert not await bot.wait_for_pictures({job.job_id}, 30)
    bot.assert_one_picture_each({job.job_id})
    [dead] = await harness.dead_letter_records(at_least=1, timeout=20)
    assert dead["value"] == garbage and dead["key"] == job.job_id.encode()
    assert dead["reason"].startswith("not JSON")
    assert dead["headers"]["p2p-source-topic"] == harness.options["requests_topic"]
    assert dead["headers"]["p2p-group"] == harness.options["worker_group"]
    # The worker committed past both messages: nothing is owed any more.
    await eventually(_zero_backlog(publisher), 20, "the backlog to drain")
    await worker.stop()
    await bot.stop()


def _zero_backlog(queue):
    async def check() -> bool:
        return await queue.backlog() == 0

    return check


async def committed_metadata(queue, group: str) -> str:
    offsets = await queue.admin.committed_offsets(group)
    return ";".join(m.metadata for m in offsets.values() if m.metadata)


async def take_one(queue, timeout: float = 30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = await queue.receive_jobs(1, 0.3)
        if got:
            return got[0]
    return None


async def test_delivery_counts_survive_crashes_and_the_worker_fails_a_job_delivered_too_often(harness, tmp_path):
    """A poison job kills every worker that takes it: its deliveries are counted across the
    crashes (in the group's commit metadata), and the worker use case fails it once it was
    delivered more than ``max_deliveries`` times, with one honest result, and acks it."""
    group = harness.options["worker_group"]
    publisher = await harness.new_queue(client_id="publisher")
    job = make_job(7)
    await publisher.publish_job(job)

    first = await harness.new_queue()
    d = await take_one(first)
    assert d is not None and d.message == job and d.attempt == 1
    await d.release()  # the worker gave it back
    d = await take_one(first)
    assert d is not None and d.attempt == 2
    # The count is in the group's commit metadata before the worker dies with the job in hand.
    await eventually(lambda: _has_count(publisher, group, "=2"), 10, "the delivery count to be committed")
    await harness.crash(first)

    second = await harness.new_queue()
    d = await take_one(second)
    assert d is not None and d.message == job and d.attempt == 3  # counted across processes
    await eventually(lambda: _has_count(publisher, group, "=3"), 10, "the delivery count to be committed")
    await harness.crash(second)

    third = await harness.new_queue()
    d = await take_one(third)
    assert d is not None and d.message == job and d.attempt == 4
    await d.release()
    storage = LocalFolderStorage(tmp_path / "images")
    await storage.start()
    worker = ProcessJobs(third, FakeGenerator(), storage, max_deliveries=4, poll_timeout_s=0.3, batch_wait_s=0)
    next_job = make_job(8)
    await publisher.publish_job(next_job)
    results: dict[str, list[Result]] = {}
    for _ in range(60):
        await worker.run_once()
        for e in await publisher.receive_events(10, 0.2):
            await e.ack()
            if isinstance(e.message, Result):
                results.setdefault(e.message.job_id, []).append(e.message)
        if next_job.job_id in results and job.job_id in results:
            break
    # The user is not left waiting in silence: one honest failure instead of a fifth try.
    assert [(r.status.value, r.error_code.value) for r in results[job.job_id]] == [("failed", "too_many_attempts")]
    assert [r.status.value for r in results[next_job.job_id]] == ["done"]  # the group went on past it
    await eventually(_zero_backlog(publisher), 20, "the worker to commit past both jobs")
    assert await harness.dead_letter_records(timeout=1) == []  # failed, not set aside: nothing to decode


async def _has_count(queue, group: str, count: str) -> bool:
    return count in await committed_metadata(queue, group)


async def test_garbage_events_do_not_stop_the_bot(harness, tmp_path):
    bot = await start_bot(harness.make_queue)
    worker = await start_worker(harness.make_queue, tmp_path / "images", "w1")
    publisher = await harness.new_queue(client_id="publisher")
    job = make_job(3)
    await publisher.publish_raw_event(b'{"v": 1, "type": "result", "data": {"job_id": 5}}', key=job.job_id.encode())
    await publisher.publish_job(job)
    assert not await bot.wait_for_pictures({job.job_id}, 30)
    reasons = await harness.dead_letters(at_least=1, timeout=20)
    assert len(reasons) == 1 and reasons[0].startswith("invalid")
    await worker.stop()
    await bot.stop()


async def test_jobs_that_break_the_rules_fail_honestly_on_the_broker_without_generating(harness, tmp_path):
    """Jobs that did not come through the bot (a 1x1 size with a long prompt, a seed out of
    range, a size that is not a multiple of 128) decode, fail with an honest ``invalid_job``
    result each, are committed past, and never reach the generator; the next job completes."""
    bot = await start_bot(harness.make_queue)
    queue = harness.make_queue(client_id="w-rules")
    await queue.start()
    storage = LocalFolderStorage(tmp_path / "images")
    await storage.start()
    generator = RecordingGenerator()
    reader = InMemoryMetricReader()
    metrics = OtelMetrics(extra_readers=[reader], system_metrics=False)
    process = ProcessJobs(
        queue, generator, storage, worker_id="w-rules", poll_timeout_s=0.2, batch_wait_s=0.02, metrics=metrics
    )
    worker = Worker(queue, process).start()
    publisher = await harness.new_queue(client_id="publisher")
    bad = [
        make_job(1).model_copy(update={"width": 1, "height": 1, "prompt": "x" * 200_000}),
        make_job(2).model_copy(update={"seed": -5}),
        make_job(3).model_copy(update={"width": 300}),
    ]
    good = make_job(4)
    for job in [*bad, good]:
        await publisher.publish_job(job)

    ids = {j.job_id for j in [*bad, good]}
    assert not await bot.wait_for_pictures(ids, 30)
    by_id = {r.job_id: r for r in bot.notifier.delivered}
    assert [(by_id[j.job_id].status.value, by_id[j.job_id].error_code) for j in bad] == [
        ("failed", ErrorCode.INVALID_JOB)
    ] * 3
    assert len(by_id[bad[0].job_id].prompt) <= 1000
    assert by_id[good.job_id].status.value == "done"
    assert generator.prompts == [good.prompt]
    await eventually(_zero_backlog(publisher), 20, "the worker to commit past every job")
    assert await harness.dead_letter_records(timeout=1) == []  # failed honestly, not set aside
    jobs = {(p.attributes["outcome"], p.attributes.get("error")): p.value for p in _points(reader, "p2p.jobs")}
    assert jobs == {("failed", "invalid_job"): 3, ("done", None): 1}

    async def drained() -> bool:  # the idle worker's gauge comes down to what waits: nothing
        return [p.value for p in _points(reader, "p2p.consumer.lag")] == [0]

    await eventually(drained, 20, "p2p_consumer_lag to say 0")
    await worker.stop()
    await bot.stop()


def _points(reader, name: str) -> list:
    data = reader.get_metrics_data()
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


async def test_dead_letters_are_counted_by_source_topic(harness):
    """The composition root counts each dead letter (p2p_dead_letters_total, the alert
    P2PDeadLetters in docs/operations.md), by the topic it came from, once it is on the topic."""
    from config.bootstrap import Components
    from config.settings import Settings

    metrics = OtelMetrics(system_metrics=False)
    queue = harness.make_queue(client_id="w-counted")
    queue.on_dead_letter = metrics.dead_lettered
    await queue.start()
    publisher = await harness.new_queue(client_id="publisher")
    job = make_job(11)
    await publisher.publish_raw_job(b"not a job", key=job.job_id.encode())
    await publisher.publish_job(job)
    d = await take_one(queue)
    assert d is not None and d.message == job  # past the garbage, which is set aside
    await d.ack()
    await harness.dead_letter_records(at_least=1, timeout=20)
    exported = metrics.prometheus()[0].decode()
    topic = harness.options["requests_topic"]
    assert [line for line in exported.splitlines() if line.startswith("p2p_dead_letters_total{")] == [
        f'p2p_dead_letters_total{{otel_scope_name="prompt2pic",otel_scope_schema_url="",'
        f'otel_scope_version="",topic="{topic}"}} 1.0'
    ]
    # The app wires it: a Kafka queue built by the composition root reports to the app's metrics.
    components = Components(Settings(queue_backend="kafka", kafka_bootstrap_servers=harness.bootstrap), role="worker")
    assert components.queue.on_dead_letter == components.metrics.dead_lettered
