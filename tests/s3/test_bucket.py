"""Bucket set-up (created if missing, private, lifecycle), the client's settings, and errors that
say what failed without saying any secret.

The tests that take ``s3_endpoint`` run on moto's server and on the real MinIO server (the one
docker-compose.yml runs), which answers some of these calls differently (adapters/s3/bucket.py).
"""

from __future__ import annotations

import json
import logging
import socket
import time

import aiohttp
import pytest
from botocore.exceptions import ClientError

from adapters.s3 import S3Storage
from adapters.s3.bucket import LIFECYCLE_RULE_ID
from domain.errors import StorageError
from domain.models import image_key

pytestmark = pytest.mark.s3


@pytest.fixture(params=["moto", "minio"])
def s3_endpoint(request):
    """This module's tests of the bucket set-up run on both servers (overrides the session's
    moto-only ``s3_endpoint``)."""
    if request.param == "moto":
        return request.getfixturevalue("s3_server").endpoint
    return request.getfixturevalue("minio_endpoint")


OTHER_RULE = {
    "ID": "someone-elses-rule",
    "Filter": {"Prefix": "tmp/"},
    "Status": "Enabled",
    "Expiration": {"Days": 1},
}


async def _rules(s3_endpoint, bucket: str) -> dict[str, dict]:
    async with s3_endpoint.client() as client:
        try:
            got = await client.get_bucket_lifecycle_configuration(Bucket=bucket)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
            return {}
    return {rule["ID"]: rule for rule in got["Rules"]}


async def _start_stop(storage) -> None:
    await storage.start()
    await storage.stop()


async def test_lifecycle_rule_follows_expire_days_and_keeps_other_rules(s3_endpoint, s3_bucket):
    async with s3_endpoint.client() as client:
        await client.create_bucket(Bucket=s3_bucket)
        await client.put_bucket_lifecycle_configuration(
            Bucket=s3_bucket, LifecycleConfiguration={"Rules": [OTHER_RULE]}
        )
    await _start_stop(s3_endpoint.storage(s3_bucket, expire_days=3))
    rules = await _rules(s3_endpoint, s3_bucket)
    assert rules.keys() == {OTHER_RULE["ID"], LIFECYCLE_RULE_ID}
    ours = rules[LIFECYCLE_RULE_ID]
    assert ours["Status"] == "Enabled"
    assert ours["Filter"] == {"Prefix": "images/"}
    assert image_key("some-job").startswith(ours["Filter"]["Prefix"])  # the rule covers the images
    assert ours["Expiration"] == {"Days": 3}

    await _start_stop(s3_endpoint.storage(s3_bucket, expire_days=5))  # updated, not doubled
    rules = await _rules(s3_endpoint, s3_bucket)
    assert rules.keys() == {OTHER_RULE["ID"], LIFECYCLE_RULE_ID}
    assert rules[LIFECYCLE_RULE_ID]["Expiration"] == {"Days": 5}

    await _start_stop(s3_endpoint.storage(s3_bucket, expire_days=0))  # 0: keep images
    assert (await _rules(s3_endpoint, s3_bucket)).keys() == {OTHER_RULE["ID"]}


async def test_an_unchanged_lifecycle_rule_is_not_written_again(s3_endpoint, s3_bucket):
    """The bot starts with a read-only key: the rule the workers set is left as it is, with no
    write (which that key may not do) and no warning."""
    await _start_stop(s3_endpoint.storage(s3_bucket, expire_days=3))
    storage = s3_endpoint.storage(s3_bucket, expire_days=3)
    writes: list[str] = []
    storage._session.events.register(
        "before-call.s3.PutBucketLifecycleConfiguration", lambda **kw: writes.append(kw["event_name"])
    )
    await _start_stop(storage)
    assert writes == []
    assert (await _rules(s3_endpoint, s3_bucket))[LIFECYCLE_RULE_ID]["Expiration"] == {"Days": 3}
    changed = s3_endpoint.storage(s3_bucket, expire_days=4)
    changed._session.events.register(
        "before-call.s3.PutBucketLifecycleConfiguration", lambda **kw: writes.append(kw["event_name"])
    )
    await _start_stop(changed)
    assert len(writes) == 1  # a changed rule is written (the hook sees writes)


async def test_no_lifecycle_rule_by_default(s3_endpoint, s3_bucket):
    await _start_stop(s3_endpoint.storage(s3_bucket))
    assert await _rules(s3_endpoint, s3_bucket) == {}
    await _start_stop(s3_endpoint.storage(s3_bucket, expire_days=2))
    await _start_stop(s3_endpoint.storage(s3_bucket))  # back to 0: the rule goes, no rule left
    assert await _rules(s3_endpoint, s3_bucket) == {}


def _public_read_policy(bucket: str) -> str:
    """What ``mc anonymous set download`` writes: anyone may read the objects."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ["*"]},
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
    )


def _public_warnings(caplog, bucket: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("adapters.s3")
        and r.levelno >= logging.WARNING
        and bucket in r.getMessage()
        and "public" in r.getMessage()
    ]


async def test_an_existing_bucket_is_used_and_a_public_one_is_reported(s3_endpoint, s3_bucket, caplog):
    """A bucket whose policy lets anyone read: moto reports it through the missing public access
    block, MinIO (which has no public access blocks) through the policy itself."""
    async with s3_endpoint.client() as client:
        await client.create_bucket(Bucket=s3_bucket)
        await client.put_object(Bucket=s3_bucket, Key="images/old.png", Body=b"old")
        await client.put_bucket_policy(Bucket=s3_bucket, Policy=_public_read_policy(s3_bucket))
    storage = s3_endpoint.storage(s3_bucket)
    with caplog.at_level(logging.WARNING, logger="adapters.s3"):
        await storage.start()
    try:
        assert await storage.get("images/old.png") == b"old"  # nothing was recreated
        assert len(_public_warnings(caplog, s3_bucket)) == 1
        await storage.start()  # a second start is a no-op
    finally:
        await storage.stop()
        await storage.stop()  # and so is a second stop


async def test_a_new_or_private_bucket_is_not_reported(s3_endpoint, s3_bucket, caplog):
    """The bucket the adapter creates is private and says nothing at WARNING, on the first start
    and on the next (on MinIO: no policy, and public access blocks NotImplemented)."""
    with caplog.at_level(logging.INFO, logger="adapters.s3"):
        await _start_stop(s3_endpoint.storage(s3_bucket))
        await _start_stop(s3_endpoint.storage(s3_bucket))
    assert not [r for r in caplog.records if r.name.startswith("adapters.s3") and r.levelno >= logging.WARNING]
    assert "S3 storage ready" in caplog.text
    async with s3_endpoint.client() as client:
        await client.put_object(Bucket=s3_bucket, Key="images/private.png", Body=b"mine")
    async with aiohttp.ClientSession() as http, http.get(f"{s3_endpoint.url}/{s3_bucket}/images/private.png") as got:
        assert got.status == 403  # an anonymous read is refused


def test_client_settings():
    storage = S3Storage(
        "b",
        endpoint_url="http://minio:9000/",
        public_endpoint_url="https://s3.example.org",
        connect_timeout_s=1.5,
        read_timeout_s=7.0,
        max_attempts=4,
    )
    config = storage._config
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout) == (1.5, 7.0)
    assert config.s3 == {"addressing_style": "path"}
    assert storage.endpoint_url == "http://minio:9000"
    assert storage.public_endpoint_url == "https://s3.example.org"
    # Settings say "" for "not set".
    aws = S3Storage("b", endpoint_url="", public_endpoint_url="")
    assert aws.endpoint_url is None and aws.public_endpoint_url is None
    with pytest.raises(ValueError):
        S3Storage("b", max_attempts=0)


async def test_use_before_start_is_a_programming_error():
    with pytest.raises(RuntimeError):
        await S3Storage("b", endpoint_url="http://127.0.0.1:9").put("k", b"", "image/png", {})


async def test_errors_say_what_failed_and_no_secret(restartable_s3, s3_bucket, caplog):
    key_id, secret = "AKIADONOTLOG7777", "SeCrEt/do-not-log+0123456789abcdef"
    storage = S3Storage(
        s3_bucket,
        endpoint_url=restartable_s3.url,
        access_key_id=key_id,
        secret_access_key=secret,
        connect_timeout_s=1.0,
        read_timeout_s=2.0,
        max_attempts=1,
    )
    caplog.set_level(logging.DEBUG, logger="adapters")
    caplog.set_level(logging.DEBUG, logger="domain")
    await storage.start()
    try:
        key = image_key("down")
        await storage.put(key, b"x", "image/png", {"seed": "1"})
        restartable_s3.stop()
        errors = []
        for call in (
            storage.put(key, b"y", "image/png", {"seed": "1"}),
            storage.get(key),  # an unreachable server is not a missing key
            storage.exists(key),  # nor a missing object: the caller decides
        ):
            with pytest.raises(StorageError) as caught:
                await call
            errors.append(caught.value)
        assert [e.params["op"] for e in errors] == ["put", "get", "head"]
        assert all(e.params["reason"] == "EndpointConnectionError" for e in errors)
        assert all(e.params["bucket"] == s3_bucket and e.params["key"] == key for e in errors)
        text = " ".join([repr(storage), caplog.text] + [f"{e} {e!r} {e.__cause__} {e.__cause__!r}" for e in errors])
        assert secret not in text and key_id not in text
    finally:
        await storage.stop()


async def test_start_fails_clearly_when_the_server_is_down(restartable_s3, s3_bucket):
    restartable_s3.stop()
    storage = restartable_s3.endpoint.storage(s3_bucket, max_attempts=1, connect_timeout_s=1.0)
    with pytest.raises(StorageError) as caught:
        await storage.start()
    assert caught.value.params["op"] == "head_bucket"
    assert storage._client is None  # nothing left open
    restartable_s3.start()
    await storage.start()  # and it can start once the server is there
    await storage.stop()


async def test_a_vanished_bucket_is_a_storage_error_not_a_missing_key(s3_endpoint, s3_bucket):
    storage = s3_endpoint.storage(s3_bucket)
    await storage.start()
    try:
        async with s3_endpoint.client() as client:
            await client.delete_bucket(Bucket=s3_bucket)
        with pytest.raises(StorageError) as caught:
            await storage.get(image_key("gone"))
        assert caught.value.params["reason"] == "NoSuchBucket"
    finally:
        await storage.stop()


async def test_non_ascii_metadata_is_stored_percent_encoded(s3_endpoint, s3_bucket):
    storage = s3_endpoint.storage(s3_bucket)
    await storage.start()
    try:
        key = image_key("unicode")
        await storage.put(key, b"x", "image/png", {"Model": "würstchen"})
        assert (await storage.metadata(key))["model"] == "w%C3%BCrstchen"
    finally:
        await storage.stop()


async def test_a_server_that_does_not_answer_times_out(s3_bucket):
    """Connected but silent (a hung server): the read timeout ends the wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing ever answers
        port = silent.getsockname()[1]
        storage = S3Storage(
            s3_bucket,
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key_id="a",
            secret_access_key="b",
            connect_timeout_s=0.5,
            read_timeout_s=0.5,
            max_attempts=1,
        )
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            await storage.start()
        assert time.monotonic() - started < 5
    assert caught.value.params["reason"] == "ReadTimeoutError"


def test_repr_and_logs_drop_userinfo():
    storage = S3Storage("b", endpoint_url="http://user:pw@minio:9000")
    assert "pw" not in repr(storage) and "minio:9000" in repr(storage)
