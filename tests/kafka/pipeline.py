"""The pieces of a Prompt2Pic deployment on Kafka, for the tests: workers (ProcessJobs) and a bot
(DeliverResults with a notifier that records what the user would receive)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.embedded.delivery_log import MemoryDeliveryLog
from adapters.embedded.generator import FakeGenerator
from adapters.embedded.storage import LocalFolderStorage
from adapters.kafka.queue import KafkaJobQueue
from domain.models import Job, JobStatus, Progress, Quality, Result
from domain.use_cases import DeliverResults, ProcessJobs


def make_job(n: int, **kw: Any) -> Job:
    return Job(
        user_id=1000 + n % 7,
        chat_id=2000 + n % 7,
        prompt=f"a test picture number {n}",
        width=256,
        height=256,
        seed=n,
        quality=Quality.FAST,
        **kw,
    )


class Notifier:
    """The chat front as the user sees it: every picture sent, in order."""

    def __init__(self) -> None:
        self.delivered: list[Result] = []
        self.progress_events: list[Progress] = []
        self.settled: list[str] = []

    async def progress(self, event: Progress) -> None:
        self.progress_events.append(event)

    async def deliver(self, result: Result, sent: Callable[[], Awaitable[None]]) -> None:
        self.delivered.append(result)
        await sent()

    async def settle(self, result: Result) -> None:
        self.settled.append(result.job_id)

    def pictures_per_job(self) -> collections.Counter[str]:
        return collections.Counter(r.job_id for r in self.delivered)


@dataclass
class Worker:
    queue: KafkaJobQueue
    process: ProcessJobs
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> Worker:
        self.task = asyncio.create_task(self.process.run(self.stop_event), name=self.process.worker_id)
        return self

    async def stop(self) -> None:
        """A clean stop: the batch in hand is finished, the rest goes back, offsets committed."""
        self.stop_event.set()
        if self.task:
            await asyncio.wait({self.task}, timeout=60)
            assert self.task.done(), f"{self.process.worker_id} did not stop within 60 s"
            self.task.result()
        await self.queue.stop()

    async def crash(self) -> None:
        """Gone at once: the task is cancelled and nothing more is committed."""
        if self.task:
            for _ in range(50):  # cancel until it is gone (a cancellation can be lost in 3.11)
                self.task.cancel()
                await asyncio.wait({self.task}, timeout=0.2)
                if self.task.done():
                    break
            assert self.task.done(), "the worker task would not stop"
        await self.queue.abort()

    def assignment(self) -> set[int]:
        return self.queue.worker_partitions()


async def start_worker(
    make_queue: Callable[..., KafkaJobQueue],
    images: Path,
    worker_id: str,
    step_delay_s: float = 0.0,
    **queue_options: Any,
) -> Worker:
    queue = make_queue(client_id=worker_id, **queue_options)
    await queue.start()
    storage = LocalFolderStorage(images)  # one folder for all workers, as one S3 bucket
    await storage.start()
    process = ProcessJobs(
        queue,
        FakeGenerator(step_delay_s=step_delay_s),
        storage,
        worker_id=worker_id,
        poll_timeout_s=0.2,
        batch_wait_s=0.02,
        publish_backoff_s=0.2,
    )
    return Worker(queue, process).start()


@dataclass
class Bot:
    queue: KafkaJobQueue
    notifier: Notifier
    deliver: DeliverResults
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        self.stop_event.set()
        if self.task:
            await asyncio.wait({self.task}, timeout=30)
            assert self.task.done(), "the bot did not stop within 30 s"
            self.task.result()
        await self.queue.stop()

    async def wait_for_pictures(self, job_ids: set[str], timeout: float) -> set[str]:
        """Wait until every job in ``job_ids`` has its result delivered; return the missing ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            missing = job_ids - {r.job_id for r in self.notifier.delivered}
            if not missing:
                return set()
            await asyncio.sleep(0.1)
        return job_ids - {r.job_id for r in self.notifier.delivered}

    def assert_one_picture_each(self, job_ids: set[str]) -> None:
        counts = self.notifier.pictures_per_job()
        assert {j for j in job_ids if counts[j] != 1} == set(), counts
        assert all(r.status == JobStatus.DONE for r in self.notifier.delivered if r.job_id in job_ids)


async def start_bot(make_queue: Callable[..., KafkaJobQueue], **queue_options: Any) -> Bot:
    queue = make_queue(client_id="bot", **queue_options)
    await queue.start()
    notifier = Notifier()
    deliver = DeliverResults(queue, notifier, MemoryDeliveryLog(), poll_timeout_s=0.2)
    bot = Bot(queue, notifier, deliver)
    bot.task = asyncio.create_task(deliver.run(bot.stop_event), name="bot")
    return bot


async def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
