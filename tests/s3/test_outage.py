"""The S3 server stops mid-run. Jobs wait and retry and finish once it is back; or, when it stays
down past the worker's attempts, each job fails with STORAGE_UNAVAILABLE (an honest message to
the user) and the worker goes on. No crash, no lost job: every job gets a result and is acked.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from domain.models import ErrorCode, JobStatus, image_key
from tests.s3.rig import ObservedStorage, make_job, running_worker

pytestmark = pytest.mark.s3


@contextlib.asynccontextmanager
async def s3_storage(server, bucket: str, max_attempts: int):
    storage = server.endpoint.storage(bucket, connect_timeout_s=1.0, read_timeout_s=3.0, max_attempts=max_attempts)
    await storage.start()
    try:
        yield storage
    finally:
        await storage.stop()


async def test_jobs_wait_for_the_server_and_finish_when_it_is_back(restartable_s3, s3_bucket):
    # botocore tries each request twice; the worker makes 4 attempts with backoff 0.5 s, 1 s, 2 s:
    # a window of 3.5 s for the server to come back.
    async with s3_storage(restartable_s3, s3_bucket, max_attempts=2) as storage:
        observed = ObservedStorage(storage)
        async with running_worker(observed, storage_attempts=4, storage_backoff_s=0.5) as rig:
            warm = make_job(0)
            await rig.submit(warm)
            assert (await rig.results_for([warm], 30))[warm.job_id].status == JobStatus.DONE

            restartable_s3.stop()
            jobs = [make_job(1), make_job(2)]
            await rig.submit(*jobs)
            await asyncio.wait_for(observed.put_failed.wait(), 20)  # an upload failed
            assert rig.results.keys() == {warm.job_id}  # nothing failed for good yet
            restartable_s3.start()  # the same port, within the retry window

            results = await rig.results_for(jobs, 30)
            assert not rig.task.done()
            assert await rig.queue.backlog() == 0  # every job acked
        assert observed.put_failures >= 1
        for job in jobs:
            result = results[job.job_id]
            assert result.status == JobStatus.DONE, result
            assert result.error_code is None
            assert result.image_key == image_key(job.job_id)
            assert await storage.get(result.image_key)  # the image is there


async def test_jobs_fail_honestly_when_the_server_stays_down_and_the_worker_goes_on(restartable_s3, s3_bucket):
    # No botocore retries here (max_attempts=1): the worker's 2 attempts are the whole budget.
    async with (
        s3_storage(restartable_s3, s3_bucket, max_attempts=1) as storage,
        running_worker(storage, storage_attempts=2, storage_backoff_s=0.1) as rig,
    ):
        warm = make_job(10)
        await rig.submit(warm)
        assert (await rig.results_for([warm], 30))[warm.job_id].status == JobStatus.DONE

        restartable_s3.stop()
        doomed = [make_job(11), make_job(12)]
        await rig.submit(*doomed)
        results = await rig.results_for(doomed, 60)
        for job in doomed:
            result = results[job.job_id]
            assert result.status == JobStatus.FAILED, result
            assert result.error_code == ErrorCode.STORAGE_UNAVAILABLE
            assert result.image_key is None and result.image_url is None
            assert (result.chat_id, result.prompt) == (job.chat_id, job.prompt)
        assert not rig.task.done()  # the worker did not crash
        assert await rig.queue.backlog() == 0  # failed jobs were answered and acked, not lost

        restartable_s3.start()
        after = make_job(13)
        await rig.submit(after)
        result = (await rig.results_for([after], 30))[after.job_id]
        assert result.status == JobStatus.DONE, result
        assert await storage.exists(image_key(after.job_id))
        assert all(len(rig.results[job.job_id]) == 1 for job in [warm, *doomed, after])
