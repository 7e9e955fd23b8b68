"""The broker stopped and started again while jobs are queued: every accepted job completes, and
readiness follows the connection."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.kafka import KafkaQueueHarness
from tests.kafka.pipeline import eventually, make_job, start_bot, start_worker

pytestmark = pytest.mark.kafka


async def test_every_accepted_job_completes_across_a_broker_restart(restartable_kafka, tmp_path):
    harness = KafkaQueueHarness(
        restartable_kafka.bootstrap, partitions=4, publish_timeout_s=40.0, health_interval_s=0.5
    )
    try:
        images = tmp_path / "images"
        bot = await start_bot(harness.make_queue)
        # Slow on purpose (4 jobs per batch, 1 s a batch): most jobs are still queued when the
        # broker goes.
        worker = await start_worker(harness.make_queue, images, "w1", step_delay_s=0.25)
        publisher = await harness.new_queue(client_id="publisher")
        jobs = [make_job(i) for i in range(40)]
        for job in jobs:
            await publisher.publish_job(job)  # accepted: the broker has it
        accepted = {j.job_id for j in jobs}
        await eventually(lambda: bot.notifier.delivered, 30, "the first picture")

        await restartable_kafka.astop()
        await eventually(
            lambda: not publisher.is_ready() and not worker.queue.is_ready(), 15, "the queues to report unready"
        )
        queued = len(accepted - {r.job_id for r in bot.notifier.delivered})
        assert queued >= 5, f"only {queued} job(s) were left when the broker stopped"
        late = make_job(99)
        publishing = asyncio.create_task(publisher.publish_job(late))  # waits, retrying
        await asyncio.sleep(1.0)
        assert not publishing.done()

        await restartable_kafka.astart()  # same port, same data
        await eventually(
            lambda: publisher.is_ready() and worker.queue.is_ready() and bot.queue.is_ready(),
            30,
            "the queues to report ready again",
        )
        await asyncio.wait_for(publishing, 40)  # the job published during the outage is accepted
        accepted.add(late.job_id)

        missing = await bot.wait_for_pictures(accepted, 120)
        assert not missing, f"{len(missing)} accepted job(s) never completed"
        await asyncio.sleep(1.0)
        bot.assert_one_picture_each(accepted)
        await worker.stop()
        await bot.stop()
    finally:
        await harness.close()
