"""Uploading the same job twice leaves one object: the key derives from the job id."""

from __future__ import annotations

import pytest

from domain.models import JobStatus, image_key
from tests.s3.rig import ObservedStorage, make_job, running_worker

pytestmark = pytest.mark.s3


async def _keys(s3_endpoint, bucket: str) -> list[str]:
    async with s3_endpoint.client() as client:
        listed = await client.list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in listed.get("Contents", [])]


async def test_storing_the_same_job_twice_leaves_one_object(s3_endpoint, s3_bucket):
    storage = s3_endpoint.storage(s3_bucket)
    await storage.start()
    try:
        key = image_key("job-twice")
        await storage.put(key, b"first", "image/png", {"seed": "1"})
        await storage.put(key, b"second", "image/png", {"seed": "1"})
        assert await _keys(s3_endpoint, s3_bucket) == [key]
        assert await storage.get(key) == b"second"
    finally:
        await storage.stop()


async def test_a_redelivered_job_does_not_make_a_second_object(s3_endpoint, s3_bucket):
    """The same job delivered twice (a redelivery while the first copy is being worked on):
    both copies get a result with the same key, and the bucket holds one object."""
    storage = s3_endpoint.storage(s3_bucket)
    await storage.start()
    try:
        job = make_job(1)
        observed = ObservedStorage(storage)
        async with running_worker(observed, batch_wait_s=0.3) as rig:
            await rig.submit(job, job)
            await rig.collect_until(lambda r: len(r.get(job.job_id, [])) == 2, timeout=30)
        first, second = rig.results[job.job_id]
        assert first.status == second.status == JobStatus.DONE
        assert first.image_key == second.image_key == image_key(job.job_id)
        # Uploaded twice when both copies are in one batch (once when the worker sees the first
        # copy's image already stored)...
        assert observed.put_calls in (1, 2)
        assert await _keys(s3_endpoint, s3_bucket) == [image_key(job.job_id)]  # ...one object
        meta = await storage.metadata(image_key(job.job_id))
        assert meta["job-id"] == job.job_id and meta["seed"] == "1" and meta["model"] == "fake"
        assert meta["content-type"] == "image/png"
        assert len(meta["prompt-sha256"]) == 16
    finally:
        await storage.stop()
