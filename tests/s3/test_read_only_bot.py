"""The bot works with a read-only S3 user, and that user cannot write: the real ``S3Storage`` against
an S3 server that enforces IAM policies (moto's server in a process of its own with authorization
on), with exactly the two policies that docker-compose.yml's ``minio-init`` makes (run with a
recording ``mc``: tests/test_compose_hardening.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from botocore.exceptions import ClientError

from adapters.s3 import S3Storage
from adapters.s3.bucket import LIFECYCLE_RULE_ID
from domain.errors import StorageError
from tests.test_compose_hardening import run_minio_init

pytestmark = pytest.mark.s3
BUCKET = "p2p-pics"
REGION = "us-east-1"


@dataclass(frozen=True)
class Key:
    id: str
    secret: str


@dataclass(frozen=True)
class EnforcingS3:
    url: str
    admin: Key
    worker: Key
    bot: Key

    def client(self, key: Key):
        return boto3.client(
            "s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id=key.id, aws_secret_access_key=key.secret
        )

    def storage(self, key: Key, **options) -> S3Storage:
        return S3Storage(
            BUCKET,
            endpoint_url=self.url,
            region=REGION,
            access_key_id=key.id,
            secret_access_key=key.secret,
            connect_timeout_s=2.0,
            read_timeout_s=5.0,
            max_attempts=1,
            **options,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def enforcing_s3(tmp_path_factory) -> Iterator[EnforcingS3]:
    """moto's server with IAM on after the first three requests, which make an administrator
    (everything else is signed by a user and checked against that user's policies)."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto's S3 server with IAM did not start", pytrace=False)
                time.sleep(0.1)
        anyone = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup")
        iam = boto3.client("iam", **anyone)
        everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(everything))
        made = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = Key(made["AccessKeyId"], made["SecretAccessKey"])
        iam = boto3.client(
            "iam", endpoint_url=url, region_name=REGION, aws_access_key_id=admin.id, aws_secret_access_key=admin.secret
        )
        # The policies minio-init makes for this bucket, attached to two users as it does.
        calls, policies = run_minio_init(
            tmp_path_factory.mktemp("minio-init"),
            {
                "MINIO_ROOT_USER": "root",
                "MINIO_ROOT_PASSWORD": "pw",
                "P2P_BUCKET": BUCKET,
                "P2P_ACCESS_KEY_ID": "p2p-app",
                "P2P_BOT_ACCESS_KEY_ID": "p2p-bot",
            },
        )
        for policy in policies.values():
            # moto asks for "s3:HeadBucket" (no such IAM action) where AWS and MinIO check
            # "s3:ListBucket" (moto.s3.responses.ACTION_MAP): grant moto's name wherever the
            # policy grants the real one, so that the double checks what the real servers check.
            for statement in policy["Statement"]:
                if "s3:ListBucket" in statement["Action"]:
                    statement["Action"] = [*statement["Action"], "s3:HeadBucket"]
        keys = {}
        for call in calls:
            if call[:3] == ["admin", "policy", "attach"]:
                policy, user = call[4], call[6]
                iam.create_user(UserName=user)
                iam.put_user_policy(UserName=user, PolicyName=policy, PolicyDocument=json.dumps(policies[policy]))
                made = iam.create_access_key(UserName=user)["AccessKey"]
                keys[user] = Key(made["AccessKeyId"], made["SecretAccessKey"])
        s3 = EnforcingS3(url, admin, keys["p2p-app"], keys["p2p-bot"])
        # The administrator's job (minio-init's mc mb and mc anonymous set none): a private bucket.
        s3.client(admin).create_bucket(Bucket=BUCKET)
        s3.client(admin).put_public_access_block(
            Bucket=BUCKET,
            PublicAccessBlockConfiguration=dict.fromkeys(
                ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
            ),
        )
        yield s3
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_server_enforces_policies(enforcing_s3):
    """Without this the other tests could not fail: an unknown key is refused."""
    with pytest.raises(ClientError) as refused:
        enforcing_s3.client(Key("nobody", "nothing")).head_bucket(Bucket=BUCKET)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


async def test_the_bot_reads_and_links_with_its_read_only_user(enforcing_s3, caplog):
    worker = enforcing_s3.storage(enforcing_s3.worker, expire_days=3)
    await worker.start()
    try:
        stored = await worker.put("images/job-1.png", b"\x89PNG picture", "image/png", {"job-id": "job-1"})
    finally:
        await worker.stop()
    rules = enforcing_s3.client(enforcing_s3.admin).get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert [r["ID"] for r in rules] == [LIFECYCLE_RULE_ID]  # the workers' user sets the expiry rule

    caplog.clear()
    bot = enforcing_s3.storage(enforcing_s3.bot, expire_days=3)
    await bot.start()  # heads the bucket, finds the rule as wanted: no write, no warning
    try:
        assert not [r for r in caplog.records if r.levelno >= 30 and r.name.startswith("adapters.s3")]
        assert await bot.get(stored.key) == b"\x89PNG picture"
        assert await bot.exists(stored.key) and not await bot.exists("images/none.png")
        link = await bot.link(stored.key)
        assert enforcing_s3.bot.id in link and stored.key in link  # signed by the bot's own key
        with pytest.raises(StorageError) as refused:
            await bot.put("images/forged.png", b"forged", "image/png", {})
        assert refused.value.params["reason"] == "AccessDenied" and refused.value.params["status"] == 403
    finally:
        await bot.stop()
    bot_client = enforcing_s3.client(enforcing_s3.bot)
    for write in (
        lambda: bot_client.put_object(Bucket=BUCKET, Key=stored.key, Body=b"replaced"),
        lambda: bot_client.delete_object(Bucket=BUCKET, Key=stored.key),
        lambda: bot_client.delete_bucket_lifecycle(Bucket=BUCKET),
    ):
        with pytest.raises(ClientError) as refused:
            write()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    body = enforcing_s3.client(enforcing_s3.admin).get_object(Bucket=BUCKET, Key=stored.key)["Body"].read()
    assert body == b"\x89PNG picture"


def test_the_bot_cannot_read_another_bucket(enforcing_s3):
    admin = enforcing_s3.client(enforcing_s3.admin)
    admin.create_bucket(Bucket="someone-else")
    admin.put_object(Bucket="someone-else", Key="secret.png", Body=b"theirs")
    for key in (enforcing_s3.bot, enforcing_s3.worker):
        with pytest.raises(ClientError) as refused:
            enforcing_s3.client(key).get_object(Bucket="someone-else", Key="secret.png")
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
