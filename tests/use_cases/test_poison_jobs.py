"""The poison-job rule of the worker use case on the in-memory queue: deliveries are counted
(releases and crashed consumers alike), and ``max_deliveries`` bounds them. The same rule on every
queue adapter: tests/contract/test_queue_contract.py."""

from __future__ import annotations

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from domain.models import ErrorCode, Job, JobStatus, Result, image_key
from domain.use_cases import ProcessJobs


def make_job(n: int) -> Job:
    return Job(user_id=n, chat_id=n, prompt=f"poison {n}", width=256, height=256, seed=n)


async def results_of(queue: MemoryJobQueue) -> list[Result]:
    out = []
    for d in await queue.receive_events(100, 0.1):
        await d.ack()
        if isinstance(d.message, Result):
            out.append(d.message)
    return out


async def test_the_memory_queue_counts_deliveries_across_releases_and_crashed_consumers():
    queue = MemoryJobQueue()
    await queue.start()
    await queue.publish_job(make_job(1))
    [first] = await queue.receive_jobs(1, 1.0)
    await first.release()
    [second] = await queue.receive_jobs(1, 1.0)
    assert queue.abandon_consumers() == 1  # the worker died with it in hand
    [third] = await queue.receive_jobs(1, 1.0)
    assert [first.attempt, second.attempt, third.attempt] == [1, 2, 3]
    await third.ack()
    assert await queue.backlog() == 0


async def test_a_worker_that_dies_on_a_job_each_time_ends_with_one_failure_result(tmp_path):
    queue = MemoryJobQueue()
    await queue.start()
    storage = LocalFolderStorage(tmp_path)
    await storage.start()
    job = make_job(2)
    await queue.publish_job(job)
    for _ in range(3):  # taken by three workers in turn, each killed while generating it
        assert len(await queue.receive_jobs(1, 1.0)) == 1
        queue.abandon_consumers()
    worker = ProcessJobs(queue, FakeGenerator(), storage, max_deliveries=3, poll_timeout_s=0.1, batch_wait_s=0)
    assert await worker.run_once() == 0  # nothing generated
    [result] = await results_of(queue)
    assert (result.job_id, result.status) == (job.job_id, JobStatus.FAILED)
    assert result.error_code == ErrorCode.TOO_MANY_ATTEMPTS
    assert result.worker_id == worker.worker_id
    assert await queue.backlog() == 0  # acked
    assert not await storage.exists(image_key(job.job_id))


async def test_no_limit_with_max_deliveries_zero(tmp_path):
    queue = MemoryJobQueue()
    await queue.start()
    storage = LocalFolderStorage(tmp_path)
    await storage.start()
    job = make_job(3)
    await queue.publish_job(job)
    for _ in range(9):
        [d] = await queue.receive_jobs(1, 1.0)
        await d.release()
    worker = ProcessJobs(queue, FakeGenerator(), storage, max_deliveries=0, poll_timeout_s=0.1, batch_wait_s=0)
    assert await worker.run_once() == 1  # the tenth delivery is generated
    [result] = await results_of(queue)
    assert result.status == JobStatus.DONE
