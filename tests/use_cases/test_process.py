"""The worker (ProcessJobs) on the in-memory adapters: batches, fairness, stopping, retries,
progress and cancellation; assertions on state, not on mock calls."""

from __future__ import annotations

import asyncio

import pytest

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from domain.errors import StorageError
from domain.models import ErrorCode, JobStatus, Progress, Quality, Result, image_key
from domain.use_cases import ProcessJobs, SubmitPrompt


class CountingGenerator(FakeGenerator):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.fail = fail

    async def generate(self, requests, progress=None):
        self.calls.append(len(requests))
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        return await super().generate(requests, progress)


class FlakyStorage(LocalFolderStorage):
    def __init__(self, root, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    async def put(self, key, data, content_type, metadata):
        if self.failures > 0:
            self.failures -= 1
            raise StorageError(reason="connection refused")
        return await super().put(key, data, content_type, metadata)


async def results_of(queue: MemoryJobQueue) -> list[Result]:
    out = []
    for d in await queue.receive_events(1000, 0.1):
        if isinstance(d.message, Result):
            out.append(d.message)
        await d.ack()
    return out


@pytest.fixture
async def parts(tmp_path):
    queue = MemoryJobQueue()
    storage = LocalFolderStorage(tmp_path / "img")
    await queue.start()
    await storage.start()
    submit = SubmitPrompt(queue, default_width=256, default_height=256, seed_source=lambda: 5)
    return queue, storage, submit


async def test_worker_makes_stores_and_reports_each_job(parts):
    queue, storage, submit = parts
    generator = CountingGenerator()
    worker = ProcessJobs(queue, generator, storage, max_batch=8, batch_wait_s=0.01)
    jobs = [await submit(user_id=i, chat_id=i, prompt=f"cat {i}", quality=Quality.FAST) for i in range(3)]
    await worker.run_once()
    results = await results_of(queue)
    assert {r.job_id for r in results} == {j.job_id for j in jobs}
    assert all(r.status == JobStatus.DONE and r.profile == "fast" for r in results)
    assert generator.calls == [3]  # one batch for compatible jobs
    for job in jobs:
        assert await storage.exists(image_key(job.job_id))
        meta = await storage.metadata(image_key(job.job_id))
        assert meta["seed"] == "5" and meta["content-type"] == "image/png"
        assert "cat" not in meta["prompt-sha256"]
    assert await queue.backlog() == 0  # all acked


async def test_incompatible_jobs_are_split_into_batches(parts):
    queue, storage, submit = parts
    generator = CountingGenerator()
    worker = ProcessJobs(queue, generator, storage, max_batch=8)
    await submit(user_id=1, chat_id=1, prompt="a", quality=Quality.FAST)
    await submit(user_id=2, chat_id=2, prompt="b", quality=Quality.QUALITY)
    await submit(user_id=3, chat_id=3, prompt="c", quality=Quality.FAST, width=512, height=256)
    assert [await worker.run_once() for _ in range(4)] == [1, 1, 1, 0]
    assert generator.calls == [1, 1, 1]
    assert len(await results_of(queue)) == 3


async def test_one_users_burst_does_not_starve_others(parts):
    queue, storage, submit = parts
    generator = CountingGenerator()
    worker = ProcessJobs(queue, generator, storage, max_batch=4, lookahead=4, batch_wait_s=0)
    burst = [await submit(user_id=1, chat_id=1, prompt=f"spam {i}", quality=Quality.FAST) for i in range(10)]
    others = [await submit(user_id=u, chat_id=u, prompt="mine", quality=Quality.FAST) for u in (2, 3)]
    assert await worker.run_once() == 4
    first = {r.job_id: r for r in await results_of(queue)}
    # The first batch serves every user in turn: both later users are in it.
    assert {o.job_id for o in others} <= set(first)
    assert sum(1 for b in burst if b.job_id in first) == 2
    while await worker.run_once():
        pass
    assert len(await results_of(queue)) == 8  # the other 8 of the burst, none lost


async def test_stopping_returns_held_jobs_to_the_queue(parts):
    queue, storage, submit = parts
    worker = ProcessJobs(
        queue, FakeGenerator(step_delay_s=0.05), storage, max_batch=1, lookahead=8, poll_timeout_s=0.05
    )
    for i in range(5):
        await submit(user_id=i, chat_id=i, prompt="x", quality=Quality.FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    while not worker.busy:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    done = len(await results_of(queue))
    assert done >= 1
    assert await queue.backlog() == 5 - done  # the rest is owed again, none lost


async def test_redelivered_job_with_stored_image_is_not_generated_again(parts):
    queue, storage, submit = parts
    generator = CountingGenerator()
    job = await submit(user_id=1, chat_id=1, prompt="fox")
    await storage.put(image_key(job.job_id), b"png", "image/png", {})
    await ProcessJobs(queue, generator, storage).process(await queue.receive_jobs(1, 1))
    [result] = await results_of(queue)
    assert result.status == JobStatus.DONE and result.image_key == image_key(job.job_id)
    assert generator.calls == []


async def test_generation_failure_is_an_honest_error_and_the_job_is_acked(parts):
    queue, storage, submit = parts
    job = await submit(user_id=1, chat_id=1, prompt="fox")
    await ProcessJobs(queue, CountingGenerator(fail=True), storage).process(await queue.receive_jobs(1, 1))
    [result] = await results_of(queue)
    assert (result.job_id, result.status, result.error_code) == (
        job.job_id,
        JobStatus.FAILED,
        ErrorCode.GENERATION_FAILED,
    )
    assert await queue.backlog() == 0


async def test_storage_is_retried_then_fails_honestly(parts, tmp_path):
    queue, _, submit = parts
    flaky = FlakyStorage(tmp_path / "flaky", failures=2)
    worker = ProcessJobs(queue, FakeGenerator(), flaky, storage_attempts=3, storage_backoff_s=0.01)
    await submit(user_id=1, chat_id=1, prompt="fox")
    await worker.process(await queue.receive_jobs(1, 1))
    [ok] = await results_of(queue)
    assert ok.status == JobStatus.DONE

    flaky.failures = 10
    await submit(user_id=1, chat_id=1, prompt="owl")
    await worker.process(await queue.receive_jobs(1, 1))
    [failed] = await results_of(queue)
    assert failed.status == JobStatus.FAILED and failed.error_code == ErrorCode.STORAGE_UNAVAILABLE
    assert flaky.failures == 7  # three attempts, then the job failed and the worker moved on


async def test_worker_reports_progress(parts):
    queue, storage, submit = parts
    await submit(user_id=1, chat_id=1, prompt="fox", quality=Quality.FAST)
    worker = ProcessJobs(queue, FakeGenerator(), storage, progress_interval_s=0)
    await worker.process(await queue.receive_jobs(1, 1))
    events = [d.message for d in await queue.receive_events(100, 0.1)]
    stages = [e.stage for e in events if isinstance(e, Progress)]
    assert stages[0] == "started" and "generating" in stages and stages[-1] == "uploading"
    assert isinstance(events[-1], Result)


async def test_worker_run_stops_after_finishing_its_batch(parts):
    queue, storage, submit = parts
    worker = ProcessJobs(queue, FakeGenerator(step_delay_s=0.05), storage, poll_timeout_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await submit(user_id=1, chat_id=1, prompt="fox", quality=Quality.FAST)
    while not worker.busy:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    [result] = await results_of(queue)
    assert result.status == JobStatus.DONE


async def test_a_cancelled_job_gets_an_honest_result_and_no_picture(parts):
    from domain.models import Cancel

    queue, storage, submit = parts
    generator = CountingGenerator()
    keep = await submit(user_id=1, chat_id=1, prompt="keep me", quality=Quality.FAST)
    drop = await submit(user_id=2, chat_id=2, prompt="drop me", quality=Quality.FAST)
    await queue.publish_cancel(Cancel(job_id=drop.job_id, user_id=2))
    worker = ProcessJobs(queue, generator, storage, max_batch=4)
    while await worker.run_once():
        pass
    results = {r.job_id: r for r in await results_of(queue)}
    assert results[keep.job_id].status == JobStatus.DONE
    assert results[drop.job_id].status == JobStatus.FAILED
    assert results[drop.job_id].error_code == ErrorCode.CANCELLED
    assert generator.calls == [1]
    assert not await storage.exists(image_key(drop.job_id))
    assert await queue.backlog() == 0
