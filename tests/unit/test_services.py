"""The use cases on the in-memory adapters: assertions on state, not on mock calls."""

from __future__ import annotations

import asyncio

import pytest

from adapters.embedded.delivery_log import MemoryDeliveryLog
from adapters.embedded.generator import FakeGenerator
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from domain.errors import QueueUnavailable, RecipientGone, StorageError
from domain.models import ErrorCode, JobStatus, Progress, Quality, Result, image_key
from domain.ports import Claim
from domain.use_cases import DeliverResults, ProcessJobs, PublishOutbox, SubmitPrompt
from domain.users import JobRecord, UserLimits


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
    worker = ProcessJobs(queue, FakeGenerator(step_delay_s=0.05), storage, max_batch=1, lookahead=8, poll_timeout_s=0.05)
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
    assert (result.job_id, result.status, result.error_code) == (job.job_id, JobStatus.FAILED, ErrorCode.GENERATION_FAILED)
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


async def test_submit_refuses_when_the_queue_is_down():
    class DownQueue(MemoryJobQueue):
        async def publish_job(self, job):
            raise ConnectionError("broker unreachable")

    with pytest.raises(QueueUnavailable):
        await SubmitPrompt(DownQueue())(user_id=1, chat_id=1, prompt="fox")


async def test_memory_queue_keeps_owed_work_across_a_restart(tmp_path):
    state = tmp_path / "queue.json"
    first = MemoryJobQueue(state)
    await first.start()
    submit = SubmitPrompt(first, default_width=256, default_height=256)
    a = await submit(user_id=1, chat_id=1, prompt="a")
    b = await submit(user_id=2, chat_id=2, prompt="b")
    [taken] = await first.receive_jobs(1, 1)  # in flight when the process stops
    await first.stop()
    second = MemoryJobQueue(state)
    await second.start()
    got = {d.message.job_id for d in await second.receive_jobs(10, 1)}
    assert got == {a.job_id, b.job_id} and taken.message.job_id in got
    assert not state.exists()


class RecordingNotifier:
    def __init__(self, gone: set[int] = frozenset(), flaky: int = 0) -> None:
        self.delivered: list[str] = []
        self.progress_seen: list[str] = []
        self.gone = gone
        self.flaky = flaky
        self.storage_down = 0
        self.fail_after_send = 0
        self.settled: list[str] = []
        self.outcomes: list[tuple[str, JobStatus, object]] = []

    async def progress(self, event):
        self.progress_seen.append(event.stage)

    async def deliver(self, result, sent):
        if result.chat_id in self.gone:
            raise RecipientGone()
        if self.flaky:
            self.flaky -= 1
            raise ConnectionError("telegram down")
        if result.status == JobStatus.DONE and self.storage_down:
            self.storage_down -= 1
            raise StorageError(op="get_object", reason="ConnectionRefused")
        self.delivered.append(result.job_id)
        self.outcomes.append((result.job_id, result.status, result.error_code))
        await sent()
        if self.fail_after_send:
            self.fail_after_send -= 1
            raise ConnectionError("the follow-up message failed")

    async def settle(self, result):
        self.settled.append(result.job_id)


def result(job_id: str, chat: int = 1) -> Result:
    return Result(job_id=job_id, user_id=chat, chat_id=chat, status=JobStatus.DONE, image_key="k")


async def test_deliver_sends_each_result_once():
    queue = MemoryJobQueue()
    notifier = RecordingNotifier()
    deliver = DeliverResults(queue, notifier, MemoryDeliveryLog(), poll_timeout_s=0.05)
    for job_id in ("a", "b", "a", "a"):
        await queue.publish_event(result(job_id))
    await queue.publish_event(Progress(job_id="b", user_id=1, chat_id=1, stage="started"))
    for d in await queue.receive_events(10, 0.1):
        await deliver.handle(d)
    assert sorted(notifier.delivered) == ["a", "b"]
    assert notifier.progress_seen == ["started"]
    assert await queue.receive_events(10, 0.05) == []


async def test_deliver_retries_a_failed_send_and_drops_unreachable_users():
    queue = MemoryJobQueue()
    notifier = RecordingNotifier(gone={9}, flaky=1)
    deliver = DeliverResults(queue, notifier, MemoryDeliveryLog(), poll_timeout_s=0.05, retry_delay_s=0.01)
    await queue.publish_event(result("x"))
    await queue.publish_event(result("gone", chat=9))
    stop = asyncio.Event()
    task = asyncio.create_task(deliver.run(stop))
    for _ in range(100):
        if notifier.delivered:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert notifier.delivered == ["x"]
    assert await queue.receive_events(10, 0.05) == []  # the unreachable user's result is not retried


async def test_a_result_claimed_elsewhere_is_released_not_skipped_and_a_delivered_one_is_settled():
    """The claim of a bot that died mid-send: the result waits (it is not acked as 'already
    delivered'); once confirmed, a copy is skipped but its status is settled again."""
    queue, notifier, log = MemoryJobQueue(), RecordingNotifier(), MemoryDeliveryLog()
    deliver = DeliverResults(queue, notifier, log, poll_timeout_s=0.05, retry_delay_s=0.01)
    assert await log.claim("busy") == Claim.TAKEN  # held by a delivery in progress
    await queue.publish_event(result("busy"))
    [d] = await queue.receive_events(10, 0.1)
    await deliver.handle(d)
    assert notifier.delivered == [] and notifier.settled == []
    [again] = await queue.receive_events(10, 0.5)  # released: still owed
    await log.confirm("busy")  # the holder finished
    await deliver.handle(again)
    assert notifier.delivered == [] and notifier.settled == ["busy"]
    assert await queue.receive_events(10, 0.05) == []


class WatchedLog(MemoryDeliveryLog):
    """Records what the notifier had done when each claim was confirmed."""

    def __init__(self, notifier: RecordingNotifier) -> None:
        super().__init__()
        self.notifier = notifier
        self.confirmed_when: dict[str, list[str]] = {}

    async def confirm(self, job_id):
        self.confirmed_when[job_id] = list(self.notifier.delivered)
        await super().confirm(job_id)


async def test_a_result_is_confirmed_the_moment_it_is_sent_and_a_later_failure_sends_it_not_again():
    """A bot killed after Telegram took the picture must not send it again: the claim is
    confirmed at the send, and a failure after it (a follow-up message) is not a retry."""
    queue, notifier = MemoryJobQueue(), RecordingNotifier()
    log = WatchedLog(notifier)
    deliver = DeliverResults(queue, notifier, log, poll_timeout_s=0.05, retry_delay_s=0.01)
    notifier.fail_after_send = 1
    await queue.publish_event(result("once"))
    [d] = await queue.receive_events(10, 0.1)
    await deliver.handle(d)
    assert log.confirmed_when == {"once": ["once"]}  # confirmed right after the send, once
    assert await log.claim("once") == Claim.DELIVERED
    assert notifier.settled == ["once"]
    assert await queue.receive_events(10, 0.05) == []  # acked: not delivered again
    assert notifier.delivered == ["once"]


class UnreachableLog(MemoryDeliveryLog):
    """A delivery log whose database is away for its first ``down`` claims."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down

    async def claim(self, job_id):
        if self.down:
            self.down -= 1
            raise ConnectionRefusedError("database away")
        return await super().claim(job_id)


async def test_a_delivery_log_that_is_away_delays_results_and_loses_none():
    queue, notifier, log = MemoryJobQueue(), RecordingNotifier(), UnreachableLog(down=3)
    deliver = DeliverResults(queue, notifier, log, poll_timeout_s=0.05, retry_delay_s=0.01)
    for job_id in ("p", "q"):
        await queue.publish_event(result(job_id))
    stop = asyncio.Event()
    task = asyncio.create_task(deliver.run(stop))
    for _ in range(200):
        if len(notifier.delivered) == 2:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task  # the loop survived the failures
    assert log.down == 0 and sorted(notifier.delivered) == ["p", "q"]
    assert await queue.receive_events(10, 0.05) == []


async def test_a_storage_outage_is_waited_out_then_told_honestly():
    queue, notifier, log = MemoryJobQueue(), RecordingNotifier(), MemoryDeliveryLog()
    clock = [0.0]
    deliver = DeliverResults(queue, notifier, log, retry_delay_s=0.0, storage_give_up_s=60,
                             clock=lambda: clock[0])
    notifier.storage_down = 2  # two reads fail, the third works
    await queue.publish_event(result("slow"))
    for _ in range(3):
        [d] = await queue.receive_events(1, 0.5)
        await deliver.handle(d)
    assert notifier.outcomes == [("slow", JobStatus.DONE, None)]
    notifier.storage_down = 10**6  # down for good
    await queue.publish_event(result("lost"))
    [d] = await queue.receive_events(1, 0.5)
    await deliver.handle(d)  # fails: released, not sent
    clock[0] = 61.0
    [d] = await queue.receive_events(1, 0.5)
    await deliver.handle(d)
    assert notifier.outcomes[-1] == ("lost", JobStatus.FAILED, ErrorCode.STORAGE_UNAVAILABLE)
    assert notifier.settled == ["slow", "lost"]
    assert await queue.receive_events(10, 0.05) == []


class FlakyQueue(MemoryJobQueue):
    """A queue whose publish of jobs times out while ``down``."""

    down = False

    async def publish_job(self, job):
        if self.down:
            raise TimeoutError()
        await super().publish_job(job)

    def is_ready(self):
        return not self.down


async def test_the_outbox_publishes_what_was_recorded_and_never_confirmed():
    from adapters.embedded.user_store import MemoryUserStore

    queue, store = FlakyQueue(), MemoryUserStore()
    submit = SubmitPrompt(queue)
    now = [1000.0]
    outbox = PublishOutbox(queue, store, submit, min_age_s=3, expiry_s=600, clock=lambda: now[0])
    job = submit.prepare(user_id=1, chat_id=1, prompt="kept through a crash")
    job = job.model_copy(update={"created_at": now[0]})
    await store.admit([JobRecord.from_job(job)], UserLimits(), now[0])  # then the bot died
    assert await outbox.run_once() == 0  # too young: the front may still be publishing it
    now[0] += 5
    queue.down = True
    assert await outbox.run_once() == 0  # nothing tried while the queue is down
    queue.down = False
    assert await outbox.run_once() == 1
    [d] = await queue.receive_jobs(10, 0.1)
    assert d.message.job_id == job.job_id and d.message.prompt == job.prompt
    assert await outbox.run_once() == 0  # published once
    expired: list[str] = []
    outbox.on_expired = lambda r: _record(expired, r.job_id)
    late = submit.prepare(user_id=2, chat_id=2, prompt="never reached the queue")
    late = late.model_copy(update={"created_at": now[0] - 700})
    await store.admit([JobRecord.from_job(late)], UserLimits(), now[0])
    queue.down = True
    await outbox.run_once()
    assert expired == [late.job_id]
    assert (await store.get_job(late.job_id)).error_code == "queue_unavailable"


async def _record(into: list[str], value: str) -> None:
    into.append(value)


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
