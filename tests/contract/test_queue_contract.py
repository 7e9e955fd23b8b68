"""The job-queue contract, run against every adapter (memory, Kafka)."""

from __future__ import annotations

import asyncio

import pytest

from domain.models import Cancel, Job, JobStatus, Lane, Progress, Result


def make_job(n: int = 0, **kw) -> Job:
    return Job(user_id=100 + n, chat_id=200 + n, prompt=f"prompt {n}", width=256, height=256, seed=n, **kw)


async def drain_jobs(queue, want: int, timeout: float = 20.0, ack: bool = True):
    got = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        for d in await queue.receive_jobs(want - len(got), 0.5):
            got.append(d)
            if ack:
                await d.ack()
    return got


async def drain_events(queue, want: int, timeout: float = 20.0):
    got = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        for d in await queue.receive_events(want - len(got), 0.5):
            got.append(d.message)
            await d.ack()
    return got


async def test_published_jobs_arrive_intact(queue_harness):
    queue = await queue_harness.new_queue()
    jobs = [make_job(i, negative_prompt="blurry") for i in range(5)]
    for job in jobs:
        await queue.publish_job(job)
    got = await drain_jobs(queue, 5)
    assert sorted((d.message for d in got), key=lambda j: j.seed) == jobs


async def test_receive_returns_empty_after_timeout(queue_harness):
    queue = await queue_harness.new_queue()
    started = asyncio.get_running_loop().time()
    assert await queue.receive_jobs(4, 0.3) == []
    assert asyncio.get_running_loop().time() - started < 5


async def test_receive_respects_max(queue_harness):
    queue = await queue_harness.new_queue()
    for i in range(6):
        await queue.publish_job(make_job(i))
    await asyncio.sleep(0.5)
    first = []
    for _ in range(20):
        first = await queue.receive_jobs(2, 1.0)
        if first:
            break
    assert 1 <= len(first) <= 2
    for d in first:
        await d.ack()
    rest = await drain_jobs(queue, 6 - len(first))
    assert len(rest) == 6 - len(first)


async def test_released_job_is_delivered_again(queue_harness):
    queue = await queue_harness.new_queue()
    job = make_job(1)
    await queue.publish_job(job)
    [first] = await drain_jobs(queue, 1, ack=False)
    await first.release()
    [again] = await drain_jobs(queue, 1)
    assert again.message == job


async def test_unacked_job_survives_a_crashed_consumer(queue_harness):
    doomed = await queue_harness.new_queue()
    job = make_job(7)
    await doomed.publish_job(job)
    [taken] = await drain_jobs(doomed, 1, ack=False)
    assert taken.message == job
    await queue_harness.crash(doomed)
    survivor = await queue_harness.new_queue()
    [again] = await drain_jobs(survivor, 1, timeout=60)
    assert again.message == job


async def test_acked_job_is_not_delivered_again(queue_harness):
    queue = await queue_harness.new_queue()
    await queue.publish_job(make_job(3))
    assert len(await drain_jobs(queue, 1)) == 1
    assert await drain_jobs(queue, 1, timeout=1.5) == []


async def test_events_carry_progress_and_results(queue_harness):
    queue = await queue_harness.new_queue()
    job = make_job(4)
    progress = Progress(
        job_id=job.job_id, user_id=job.user_id, chat_id=job.chat_id, stage="generating", step=3, total_steps=12
    )
    result = Result(
        job_id=job.job_id,
        user_id=job.user_id,
        chat_id=job.chat_id,
        status=JobStatus.DONE,
        image_key="images/x.png",
        image_url="http://example.invalid/x.png",
        profile="fast",
    )
    await queue.publish_event(progress)
    await queue.publish_event(result)
    got = await drain_events(queue, 2)
    assert progress in got and result in got


async def test_garbage_job_is_set_aside_and_the_next_job_arrives(queue_harness):
    queue = await queue_harness.new_queue()
    await queue_harness.inject_raw_job(b"\x00\xffnot json at all")
    await queue_harness.inject_raw_job(b'{"v": 99, "type": "job", "data": {}}')
    await queue_harness.inject_raw_job(b'{"v": 1, "type": "job", "data": {"prompt": ""}}')
    job = make_job(9)
    await queue.publish_job(job)
    got = await drain_jobs(queue, 1, timeout=30)
    assert [d.message for d in got] == [job]
    reasons = await queue_harness.dead_letters(at_least=3, timeout=20)
    assert len(reasons) >= 3
    assert any("not JSON" in r for r in reasons)
    assert any("version" in r for r in reasons)
    assert any("invalid" in r for r in reasons)


async def test_garbage_event_is_set_aside(queue_harness):
    queue = await queue_harness.new_queue()
    await queue_harness.inject_raw_event(b"[1, 2, 3]")
    job = make_job(5)
    result = Result(job_id=job.job_id, user_id=1, chat_id=1, status=JobStatus.FAILED)
    await queue.publish_event(result)
    assert await drain_events(queue, 1, timeout=30) == [result]
    assert any("envelope" in r for r in await queue_harness.dead_letters(at_least=1, timeout=20))


async def test_backlog_counts_unfinished_jobs(queue_harness):
    queue = await queue_harness.new_queue()
    for i in range(3):
        await queue.publish_job(make_job(i))
    deadline = asyncio.get_running_loop().time() + 20
    backlog = 0
    while asyncio.get_running_loop().time() < deadline:
        backlog = await queue.backlog()
        if backlog >= 3:
            break
        await asyncio.sleep(0.3)
    assert backlog == 3
    await drain_jobs(queue, 3)
    deadline = asyncio.get_running_loop().time() + 20
    while asyncio.get_running_loop().time() < deadline:
        backlog = await queue.backlog()
        if backlog == 0:
            break
        await asyncio.sleep(0.3)
    assert backlog == 0


class CountingGenerator:
    """The fast fake generator, counting the pictures it was asked for."""

    def __init__(self) -> None:
        from adapters.embedded.generator import FakeGenerator

        self.inner = FakeGenerator()
        self.name, self.max_batch = self.inner.name, self.inner.max_batch
        self.asked = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def generate(self, requests, progress=None):
        self.asked += len(requests)
        return await self.inner.generate(requests, progress)


async def test_a_job_delivered_past_the_limit_fails_once_with_too_many_attempts_and_is_acked(queue_harness, tmp_path):
    """The poison-job rule: the adapter counts the deliveries of a job (``Delivery.attempt``), the
    worker use case fails a job delivered more than ``max_deliveries`` times instead of trying it
    again, with one honest result through the normal path, and acks it."""
    from adapters.embedded.storage import LocalFolderStorage
    from domain.models import ErrorCode
    from domain.use_cases import ProcessJobs

    queue = await queue_harness.new_queue()
    job, next_job = make_job(12), make_job(13)
    await queue.publish_job(job)
    for attempt in (1, 2):  # given back unfinished twice (as by a worker that died with it)
        [taken] = await drain_jobs(queue, 1, ack=False, timeout=30)
        assert taken.message == job and taken.attempt == attempt
        await taken.release()

    generator = CountingGenerator()
    storage = LocalFolderStorage(tmp_path / "images")
    await storage.start()
    worker = ProcessJobs(queue, generator, storage, max_deliveries=2, poll_timeout_s=0.3, batch_wait_s=0)
    results: list[Result] = []
    deadline = asyncio.get_running_loop().time() + 30
    while not results and asyncio.get_running_loop().time() < deadline:
        await worker.run_once()
        results += [e for e in await drain_events(queue, 1, timeout=0.5) if isinstance(e, Result)]
    assert [(r.job_id, r.status, r.error_code) for r in results] == [
        (job.job_id, JobStatus.FAILED, ErrorCode.TOO_MANY_ATTEMPTS)
    ]
    assert generator.asked == 0  # not tried a third time

    # Acked: the group is past it, the next job goes through, and no second result comes.
    await queue.publish_job(next_job)
    deadline = asyncio.get_running_loop().time() + 30
    while not any(r.job_id == next_job.job_id for r in results) and asyncio.get_running_loop().time() < deadline:
        await worker.run_once()
        results += [e for e in await drain_events(queue, 3, timeout=0.5) if isinstance(e, Result)]
    results += [e for e in await drain_events(queue, 3, timeout=1.5) if isinstance(e, Result)]
    assert [r.job_id for r in results].count(job.job_id) == 1
    [done] = [r for r in results if r.job_id == next_job.job_id]
    assert done.status == JobStatus.DONE and generator.asked == 1
    backlog = -1
    deadline = asyncio.get_running_loop().time() + 20
    while backlog != 0 and asyncio.get_running_loop().time() < deadline:
        backlog = await queue.backlog()  # Kafka: committed past both jobs
        await asyncio.sleep(0.3)
    assert backlog == 0
    assert await drain_jobs(queue, 1, timeout=1.5) == []


@pytest.mark.parametrize("grace_s", [30.0, 0.3], ids=["batch-done-within-grace", "batch-cut-at-grace"])
async def test_a_worker_stopped_mid_batch_loses_nothing_and_counts_no_delivery(queue_harness, tmp_path, grace_s):
    """A planned stop (SIGTERM, a rolling upgrade) in the middle of a long batch, through the
    app's own ``stop_workers``: whether the batch finishes within the grace period or is cut at
    its end, no job is lost, and every job given back (held, or cut mid-batch) comes again with
    the delivery count it had before the stopped worker took it: five restarts never fail a job
    with TOO_MANY_ATTEMPTS. Kafka carries the count to the next owner in the commit metadata."""
    from adapters.embedded.storage import LocalFolderStorage
    from app import stop_workers
    from domain.use_cases import ProcessJobs
    from tests.telegram.helpers import HeldGenerator

    queue = await queue_harness.new_queue()
    jobs = {job.job_id: job for job in (make_job(20 + i) for i in range(4))}
    for job in jobs.values():
        await queue.publish_job(job)
    # One job was given back once before (as by a worker that died with it): its count is 1.
    [earlier] = await drain_jobs(queue, 1, ack=False, timeout=30)
    assert earlier.attempt == 1
    await earlier.release()
    counted_before = {job_id: 1 if job_id == earlier.message.job_id else 0 for job_id in jobs}

    generator = HeldGenerator(marker="prompt")  # every batch waits until the test lets it go
    storage = LocalFolderStorage(tmp_path / "images")
    await storage.start()
    worker = ProcessJobs(queue, generator, storage, max_batch=2, lookahead=2, batch_wait_s=0.5, poll_timeout_s=0.3)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(generator.holding.wait(), 30)
    assert worker.busy and len(worker._in_batch) >= 1
    stop.set()
    if grace_s > 1:  # the batch ends within the grace period
        asyncio.get_running_loop().call_later(0.3, generator.release)
    await stop_workers([task], grace_s)
    assert task.done() and task.cancelled() == (grace_s < 1)
    await queue.stop()  # Kafka: leaves the group, committing the counts

    successor = await queue_harness.new_queue()
    finished = {r.job_id for r in await drain_events(successor, 100, timeout=3) if isinstance(r, Result)}
    if grace_s > 1:
        assert len(finished) >= 1  # the batch was finished, its results published
    else:
        assert finished == set()  # cut: nothing published, all given back
    again = await drain_jobs(successor, len(jobs) - len(finished), timeout=60)
    assert sorted(d.message.job_id for d in again) == sorted(set(jobs) - finished)  # nothing lost
    assert {d.message.job_id: d.attempt for d in again} == {
        d.message.job_id: counted_before[d.message.job_id] + 1 for d in again
    }
    assert await drain_jobs(successor, 1, timeout=1.5) == []


# --------------------------------------------------------------------------- lanes


async def _joined(queue) -> None:
    """One priority job out and back: the worker's consumer has joined its group and is reading
    (Kafka's joins take seconds), so what follows is read as it would be by a running worker."""
    probe = make_job(999)
    await queue.publish_job(probe)
    [got] = await drain_jobs(queue, 1)
    assert got.message == probe


async def _one_by_one(queue, want: int, timeout: float = 30.0):
    """Receive ``want`` jobs one at a time, acking each: the order the queue hands them out."""
    got = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        for d in await queue.receive_jobs(1, 0.5):
            got.append(d.message)
            await d.ack()
    return got


async def test_priority_jobs_go_out_before_a_relaxed_backlog(queue_harness):
    queue = await queue_harness.new_queue()
    await _joined(queue)
    relaxed = [make_job(i, lane=Lane.RELAXED) for i in range(8)]
    priority = [make_job(10 + i) for i in range(2)]
    for job in (*relaxed, *priority):  # the relaxed backlog was there first
        await queue.publish_job(job)
    await asyncio.sleep(1.0)  # all of it read by the consumer's fetcher
    got = await _one_by_one(queue, 10)
    assert [j.lane for j in got] == [Lane.PRIORITY] * 2 + [Lane.RELAXED] * 8
    assert sorted(got[:2], key=lambda j: j.seed) == priority
    assert sorted(got[2:], key=lambda j: j.seed) == relaxed  # none lost


async def test_the_relaxed_lane_keeps_its_share_under_a_priority_stream(queue_harness):
    """Both lanes full: at least one job in ``relaxed_every`` (4) handed out is relaxed."""
    queue = await queue_harness.new_queue()
    await _joined(queue)
    for i in range(12):
        await queue.publish_job(make_job(i, lane=Lane.RELAXED))
    for i in range(12):
        await queue.publish_job(make_job(100 + i))
    await asyncio.sleep(1.0)
    got = await _one_by_one(queue, 24)
    lanes = [j.lane for j in got]
    assert len(got) == 24
    for start in range(0, 16, 4):  # while both lanes had work: 3 priority, then 1 relaxed
        assert lanes[start : start + 4] == [Lane.PRIORITY] * 3 + [Lane.RELAXED], lanes
    assert lanes[16:] == [Lane.RELAXED] * 8  # priority drained: the relaxed rest


async def test_a_cancellation_travels_behind_its_job_in_the_jobs_lane(queue_harness):
    queue = await queue_harness.new_queue()
    await _joined(queue)
    job = make_job(1, lane=Lane.RELAXED)
    await queue.publish_job(job)
    await queue.publish_cancel(Cancel(job_id=job.job_id, user_id=job.user_id, lane=Lane.RELAXED))
    got = await _one_by_one(queue, 2)
    assert [type(m) for m in got] == [Job, Cancel]
    assert got[0] == job and got[1].job_id == job.job_id and got[1].lane == Lane.RELAXED


async def test_backlogs_count_each_lane(queue_harness):
    queue = await queue_harness.new_queue()
    for i in range(3):
        await queue.publish_job(make_job(i, lane=Lane.RELAXED))
    await queue.publish_job(make_job(9))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    backlogs: dict = {}
    while loop.time() < deadline:
        backlogs = await queue.backlogs()
        if backlogs == {Lane.PRIORITY: 1, Lane.RELAXED: 3}:
            break
        await asyncio.sleep(0.3)
    assert backlogs == {Lane.PRIORITY: 1, Lane.RELAXED: 3}
    assert await queue.backlog() == 4


async def test_an_unacked_relaxed_job_survives_a_crashed_consumer_and_counts_its_delivery(queue_harness):
    doomed = await queue_harness.new_queue()
    job = make_job(8, lane=Lane.RELAXED)
    await doomed.publish_job(job)
    [taken] = await drain_jobs(doomed, 1, ack=False)
    assert (taken.message, taken.attempt) == (job, 1)
    await asyncio.sleep(1.0)  # Kafka: the count is committed within commit_interval_ms of the hand-out
    await queue_harness.crash(doomed)
    survivor = await queue_harness.new_queue()
    [again] = await drain_jobs(survivor, 1, timeout=60, ack=False)
    assert again.message == job and again.message.lane == Lane.RELAXED
    assert again.attempt == 2  # the dead consumer's delivery counts, in the relaxed lane too
    await again.release()
    [third] = await drain_jobs(survivor, 1)
    assert third.message == job
