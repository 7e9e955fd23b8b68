"""KafkaJobQueue details beyond the port contract: topics, keys, commits, readiness."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from adapters.kafka.queue import KafkaJobQueue
from domain.models import JobStatus, Progress, Result
from tests.fixtures.kafka import KafkaQueueHarness, topic_partitions
from tests.kafka.pipeline import make_job

pytestmark = pytest.mark.kafka


async def read_topic(bootstrap: str, topic: str, want: int, timeout: float = 20.0):
    tps = await topic_partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += records
        return out
    finally:
        await consumer.stop()


async def test_topics_are_created_with_their_partitions_and_an_existing_set_is_reused(kafka_bootstrap):
    harness = KafkaQueueHarness(kafka_bootstrap, partitions=5)
    try:
        queue = await harness.new_queue()
        described = {
            t["topic"]: len(t["partitions"])
            for t in await queue.admin.describe_topics(
                [harness.options[k] for k in ("requests_topic", "results_topic", "dead_letter_topic")]
            )
        }
        assert described == {
            harness.options["requests_topic"]: 5,
            harness.options["results_topic"]: 5,
            harness.options["dead_letter_topic"]: 1,
        }
        again = await harness.new_queue()  # the topics exist now: start just goes on
        assert again.is_ready()
    finally:
        await harness.close()


async def test_jobs_are_keyed_by_job_id_and_events_by_chat(harness):
    """Jobs spread over the workers; one chat's events reach one bot instance, in order."""
    queue = await harness.new_queue()
    job, other = make_job(1), make_job(8)  # n % 7: the same user and chat
    await queue.publish_job(job)
    for j in (job, other):  # two jobs of one chat
        assert j.chat_id == job.chat_id
        await queue.publish_event(Progress(job_id=j.job_id, user_id=j.user_id, chat_id=j.chat_id, stage="started"))
        await queue.publish_event(Result(job_id=j.job_id, user_id=j.user_id, chat_id=j.chat_id, status=JobStatus.DONE))
    [request] = await read_topic(harness.bootstrap, harness.options["requests_topic"], 1)
    assert request.key == job.job_id.encode()
    events = await read_topic(harness.bootstrap, harness.options["results_topic"], 4)
    assert [e.key for e in events] == [str(job.chat_id).encode()] * 4
    assert len({e.partition for e in events}) == 1  # one partition: progress before result
    assert [e.offset for e in events] == sorted(e.offset for e in events)


async def test_stop_commits_only_the_contiguous_acked_prefix(kafka_bootstrap):
    harness = KafkaQueueHarness(kafka_bootstrap, partitions=1)
    try:
        queue = await harness.new_queue()
        jobs = [make_job(i) for i in range(4)]
        for job in jobs:
            await queue.publish_job(job)
        got = []
        while len(got) < 4:
            got += await queue.receive_jobs(4 - len(got), 1.0)
        assert [d.message for d in got] == jobs
        for i in (0, 2, 3):  # 1 is not finished: the commit stays at it
            await got[i].ack()
        await queue.stop()
        other = await harness.new_queue()
        again = []
        deadline = time.monotonic() + 20
        while len(again) < 3 and time.monotonic() < deadline:
            again += await other.receive_jobs(3, 0.5)
        assert [d.message for d in again] == jobs[1:]
        # Only the unfinished one is counted in the commit metadata (2 and 3 had been acked).
        assert [d.attempt for d in again] == [2, 1, 1]
    finally:
        await harness.close()


async def test_start_fails_when_no_broker_answers_and_the_queue_is_not_ready():
    queue = KafkaJobQueue("127.0.0.1:9", start_timeout_s=1.0)  # port 9: nothing listens
    started = time.monotonic()
    with pytest.raises((KafkaError, OSError)):
        await queue.start()
    assert time.monotonic() - started < 15
    assert not queue.is_ready()


async def test_release_gives_the_job_to_the_next_receive_first(harness):
    queue = await harness.new_queue()
    for i in range(3):
        await queue.publish_job(make_job(i))
    got = []
    while len(got) < 3:
        got += await queue.receive_jobs(3, 1.0)
    await got[1].release()
    await got[1].ack()  # settled already: a no-op
    [again] = await queue.receive_jobs(1, 1.0)
    assert again.message == got[1].message and again.attempt == 2
    for d in (got[0], got[2], again):
        await d.ack()
    assert await queue.receive_jobs(3, 1.0) == []
    await asyncio.sleep(0)


async def test_a_job_whose_result_never_reached_the_broker_is_delivered_again(harness):
    """Results are pipelined (sent without waiting, a whole batch per request): the job's ack
    only counts once the broker has confirmed its result; a failed send brings the job back."""
    queue = await harness.new_queue()
    job = make_job(5)
    await queue.publish_job(job)
    [delivery] = await queue.receive_jobs(1, 10.0)
    sending: asyncio.Future = asyncio.get_running_loop().create_future()
    queue.confirmations.track(job.job_id, sending)  # as publish_event(result) does with the send
    await delivery.ack()
    assert await queue.receive_jobs(1, 0.5) == []  # acked: not handed out again...
    sending.set_exception(ConnectionError("broker gone"))  # ...until its result is lost
    [again] = await queue.receive_jobs(1, 5.0)
    assert again.message == job and again.attempt == 2
    await again.ack()  # no result pending this time: finished at once
    assert await queue.receive_jobs(1, 0.5) == []
    await asyncio.sleep(0.3)
    assert await queue.backlog() == 0 or await _eventually_zero(queue)


async def _eventually_zero(queue) -> bool:
    for _ in range(30):
        if await queue.lag.refresh() == 0:  # measured now, not the cached value
            return True
        await asyncio.sleep(0.2)
    return False


async def test_results_published_before_stop_are_confirmed_and_their_jobs_committed(harness):
    queue = await harness.new_queue()
    jobs = [make_job(i) for i in range(5)]
    for job in jobs:
        await queue.publish_job(job)
    got = []
    while len(got) < 5:
        got += await queue.receive_jobs(5, 1.0)
    for d in got:
        await queue.publish_event(Result(job_id=d.message.job_id, user_id=1, chat_id=1, status=JobStatus.DONE))
        await d.ack()
    await queue.stop()  # flushes the results, then commits their jobs
    other = await harness.new_queue()
    assert await other.receive_jobs(5, 1.5) == []
    events = await read_topic(harness.bootstrap, harness.options["results_topic"], 5)
    from domain.codec import decode_event

    assert sorted(decode_event(e.value).job_id for e in events) == sorted(j.job_id for j in jobs)


async def test_a_job_carries_the_trace_context_of_its_publisher(harness):
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    queue = await harness.new_queue()
    job = make_job(11)
    with tracer.start_as_current_span("submit") as span:
        await queue.publish_job(job)
        trace_id = format(span.get_span_context().trace_id, "032x")
    [delivery] = await queue.receive_jobs(1, 10.0)
    assert delivery.carrier is not None and trace_id in delivery.carrier["traceparent"]
    await delivery.ack()


async def test_a_cancellation_follows_its_job_to_the_worker(harness, tmp_path):
    from domain.models import Cancel, ErrorCode
    from tests.kafka.pipeline import start_bot, start_worker

    publisher = await harness.new_queue(client_id="publisher")
    bot = await start_bot(harness.make_queue)
    job = make_job(21)
    await publisher.publish_job(job)
    await publisher.publish_cancel(Cancel(job_id=job.job_id, user_id=job.user_id))
    records = await read_topic(harness.bootstrap, harness.options["requests_topic"], 2)
    assert [r.key for r in records] == [job.job_id.encode()] * 2  # one partition, job first
    assert records[0].partition == records[1].partition and records[0].offset < records[1].offset

    worker = await start_worker(harness.make_queue, tmp_path / "images", "w1")
    assert not await bot.wait_for_pictures({job.job_id}, 30)
    [result] = bot.notifier.delivered
    assert result.status == JobStatus.FAILED and result.error_code == ErrorCode.CANCELLED
    await worker.stop()
    await bot.stop()


async def test_each_chat_is_kept_by_the_one_bot_that_receives_its_events(harness):
    """Two bot instances in one group split the chats: for every chat exactly one says it
    receives its events, and it is the one that does (so one instance keeps its live status)."""
    bots = [await harness.new_queue(), await harness.new_queue()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not all(len(bot.event_partitions()) == 3 for bot in bots):  # both joined: 6 partitions
        assert loop.time() < deadline, [bot.event_partitions() for bot in bots]
        for bot in bots:
            assert await bot.receive_events(10, 0.2) == []
    chats = list(range(-3, 40))
    for chat in chats:
        await bots[0].publish_event(Progress(job_id=f"j{chat}", user_id=abs(chat), chat_id=chat, stage="started"))
    got: dict[int, int] = {}  # chat: the bot that received its event
    while len(got) < len(chats):
        assert loop.time() < deadline, f"events of {set(chats) - set(got)} not received"
        for i, bot in enumerate(bots):
            for delivery in await bot.receive_events(50, 0.3):
                got[delivery.message.chat_id] = i
                await delivery.ack()
    assert set(got.values()) == {0, 1}
    for chat in chats:
        says = [bot.delivers_events_of(chat) for bot in bots]
        assert says.count(True) == 1 and says[got[chat]], (chat, says, got[chat])
