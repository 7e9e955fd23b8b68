"""Delivering results (DeliverResults) on the in-memory queue and delivery log: once each,
retried, claimed elsewhere, confirmed at the send, through a delivery log or storage outage;
the chat side is a recording notifier."""

from __future__ import annotations

import asyncio

from adapters.embedded.delivery_log import MemoryDeliveryLog
from adapters.embedded.queue import MemoryJobQueue
from domain.errors import RecipientGone, StorageError
from domain.models import ErrorCode, JobStatus, Progress, Result
from domain.ports import Claim
from domain.use_cases import DeliverResults


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
    deliver = DeliverResults(queue, notifier, log, retry_delay_s=0.0, storage_give_up_s=60, clock=lambda: clock[0])
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
