"""A worker (``ProcessJobs``) on the in-memory queue and the fake generator, storing through a
given storage: what ``tests/s3`` runs against the S3 server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.queue import MemoryJobQueue
from domain.models import Job, Quality, Result
from domain.use_cases import ProcessJobs


def make_job(n: int, **kw) -> Job:
    return Job(
        user_id=1000 + n,
        chat_id=2000 + n,
        prompt=f"a red fox number {n}",
        width=256,
        height=256,
        seed=n,
        quality=Quality.FAST,
        **kw,
    )


class ObservedStorage:
    """Passes everything to the real storage and notes each failed ``put``."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.put_calls = 0
        self.put_failures = 0
        self.put_failed = asyncio.Event()

    async def put(self, *args, **kwargs):
        self.put_calls += 1
        try:
            return await self.inner.put(*args, **kwargs)
        except Exception:
            self.put_failures += 1
            self.put_failed.set()
            raise

    def __getattr__(self, name):
        return getattr(self.inner, name)


@dataclass
class Rig:
    queue: MemoryJobQueue
    worker: ProcessJobs
    task: asyncio.Task
    results: dict[str, list[Result]] = field(default_factory=dict)

    async def submit(self, *jobs: Job) -> None:
        for job in jobs:
            await self.queue.publish_job(job)

    async def collect_until(self, done, timeout: float) -> None:
        """Collect results until ``done(self.results)`` holds (fails after ``timeout``); every
        event is acked."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done(self.results):
            assert not self.task.done(), f"the worker stopped: {self.task}"
            left = deadline - loop.time()
            assert left > 0, f"timed out; results so far: {self.results}"
            for delivery in await self.queue.receive_events(64, min(0.2, left)):
                if isinstance(delivery.message, Result):
                    self.results.setdefault(delivery.message.job_id, []).append(delivery.message)
                await delivery.ack()

    async def results_for(self, jobs: list[Job], timeout: float) -> dict[str, Result]:
        """The (latest) result of each job, waiting for them."""
        wanted = {job.job_id for job in jobs}
        await self.collect_until(lambda results: wanted <= results.keys(), timeout)
        return {job.job_id: self.results[job.job_id][-1] for job in jobs}


@contextlib.asynccontextmanager
async def running_worker(storage, **worker_options) -> AsyncIterator[Rig]:
    queue = MemoryJobQueue()
    await queue.start()
    generator = FakeGenerator()
    await generator.start()
    options = dict(
        worker_id="w-s3",
        max_batch=4,
        batch_wait_s=0.05,
        poll_timeout_s=0.1,
        storage_attempts=3,
        storage_backoff_s=0.2,
        publish_backoff_s=0.1,
        progress_interval_s=10.0,
    )
    options.update(worker_options)
    worker = ProcessJobs(queue=queue, generator=generator, storage=storage, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield Rig(queue=queue, worker=worker, task=task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)  # raises if the worker crashed
        await generator.stop()
        await queue.stop()
