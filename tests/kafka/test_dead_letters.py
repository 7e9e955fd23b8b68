"""Poison messages go to the dead-letter topic with the reason, and the consumer goes on."""

from __future__ import annotations

import asyncio

import pytest

from tests.kafka.pipeline import eventually, make_job, start_bot, start_worker

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


async def test_a_job_delivered_too_often_is_dead_lettered_even_across_crashes(harness):
    group = harness.options["worker_group"]
    publisher = await harness.new_queue(client_id="publisher")
    job = make_job(7)
    await publisher.publish_job(job)

    first = await harness.new_queue(max_deliveries=3)
    d = await take_one(first)
    assert d is not None and d.message == job and d.attempt == 1
    await d.release()  # the worker gave it back
    d = await take_one(first)
    assert d is not None and d.attempt == 2
    # The count is in the group's commit metadata before the worker dies with the job in hand.
    await eventually(lambda: _has_count(publisher, group, "=2"), 10, "the delivery count to be committed")
    await harness.crash(first)

    second = await harness.new_queue(max_deliveries=3)
    d = await take_one(second)
    assert d is not None and d.message == job and d.attempt == 3  # counted across processes
    await eventually(lambda: _has_count(publisher, group, "=3"), 10, "the delivery count to be committed")
    await harness.crash(second)

    third = await harness.new_queue(max_deliveries=3)
    assert await take_one(third, timeout=5) is None  # set aside instead of a 4th delivery
    [dead] = await harness.dead_letter_records(at_least=1, timeout=20)
    assert dead["reason"] == "delivered 3 times without being acked (max_deliveries=3)"
    assert dead["headers"]["p2p-attempts"] == "4"
    next_job = make_job(8)
    await publisher.publish_job(next_job)
    d = await take_one(third)
    assert d is not None and d.message == next_job and d.attempt == 1
    await d.ack()
    # The user is not left waiting in silence: an honest failure result is on the results topic.
    failures = []
    for _ in range(40):
        for e in await publisher.receive_events(10, 0.5):
            await e.ack()
            if getattr(e.message, "job_id", None) == job.job_id and e.message.kind == "result":
                failures.append(e.message)
        if failures:
            break
    assert [(r.status.value, r.error_code.value) for r in failures] == [("failed", "too_many_attempts")]


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
