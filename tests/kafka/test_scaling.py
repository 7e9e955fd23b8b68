"""Workers scale out through the consumer group: they share the partitions, and workers joining
and leaving in the middle of a run lose no job; every user gets exactly one picture."""

from __future__ import annotations

import asyncio

import pytest

from tests.kafka.pipeline import eventually, make_job, start_bot, start_worker

pytestmark = pytest.mark.kafka


async def test_two_workers_share_the_partitions_and_scaling_loses_no_job(harness, tmp_path):
    images = tmp_path / "images"
    bot = await start_bot(harness.make_queue)
    w1 = await start_worker(harness.make_queue, images, "w1", step_delay_s=0.02)
    w2 = await start_worker(harness.make_queue, images, "w2", step_delay_s=0.02)
    publisher = await harness.new_queue(client_id="publisher")

    def shared() -> bool:
        a, b = w1.assignment(), w2.assignment()
        return bool(a) and bool(b) and not (a & b) and a | b == set(range(6))

    await eventually(shared, 30, "two workers to split the 6 partitions between them")

    first = [make_job(i) for i in range(30)]
    for job in first:
        await publisher.publish_job(job)
    assert not await bot.wait_for_pictures({j.job_id for j in first}, 60)
    assert {r.worker_id for r in bot.notifier.delivered} == {"w1", "w2"}  # both did work

    # Second wave, published steadily while one worker joins, one leaves cleanly and one dies.
    second = [make_job(100 + i) for i in range(60)]

    async def publish_steadily() -> None:
        for job in second:
            await publisher.publish_job(job)
            await asyncio.sleep(0.02)

    publishing = asyncio.create_task(publish_steadily())
    await asyncio.sleep(0.3)
    w3 = await start_worker(harness.make_queue, images, "w3", step_delay_s=0.02)
    await asyncio.sleep(0.5)
    await w1.stop()  # leaves the group: its batch is finished, its held jobs go back
    await asyncio.sleep(0.3)
    await w2.crash()  # dies: whatever it had in hand is owed again
    await publishing

    everything = {j.job_id for j in first + second}
    missing = await bot.wait_for_pictures(everything, 90)
    assert not missing, f"{len(missing)} job(s) never completed"
    await asyncio.sleep(1.0)  # a late duplicate result would show up now
    bot.assert_one_picture_each(everything)
    assert len(bot.notifier.delivered) == len(everything)
    await eventually(lambda: w3.assignment() == set(range(6)), 30, "the survivor to own every partition")
    await w3.stop()
    await bot.stop()


async def drain(queue, want: int, timeout: float, ack: bool = False):
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < want and loop.time() < deadline:
        for d in await queue.receive_jobs(want - len(got), 0.3):
            got.append(d)
            if ack:
                await d.ack()
    return got


async def test_a_rebalance_drops_the_revoked_deliveries_and_they_come_again(harness):
    q1 = await harness.new_queue()
    jobs = [make_job(i) for i in range(12)]
    for job in jobs:
        await q1.publish_job(job)
    held = await drain(q1, 12, 30)
    assert len(held) == 12 and all(d.attempt == 1 for d in held)

    q2 = await harness.new_queue()
    # q2 joins: the group rebalances and q1's partitions are all revoked (eager protocol).
    again = await drain(q2, 1, 30)
    await eventually(lambda: all(d.stale for d in held), 30, "q1's deliveries to be dropped")
    for d in held:
        await d.ack()  # no-ops: these partitions were taken away
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(again) < 12 and loop.time() < deadline:  # each gets its share again
        for q in (q1, q2):
            again += await q.receive_jobs(12, 0.2)
    assert sorted(d.message.job_id for d in again) == sorted(j.job_id for j in jobs)
    # The delivery counts went with the partitions (commit metadata): this is the 2nd delivery.
    assert {d.attempt for d in again} == {2}
    for d in again:
        await d.ack()
    assert await drain(q1, 1, 1.0) == [] and await drain(q2, 1, 1.0) == []
