"""The users and policies that docker-compose.yml's ``minio-init`` makes, applied to the real MinIO
server, and the real ``S3Storage`` of the workers and of the bot working with them.

``minio-init``'s script runs with a recording ``mc`` (``run_minio_init``, as in
tests/s3/test_read_only_bot.py, which does the same on moto with IAM); each call it makes is then
replayed on MinIO through MinIO's admin API (the ``minio`` package's ``MinioAdmin``, which speaks
the same API as ``mc admin``), the policy JSON exactly as the script wrote it. A call this test
does not know fails it, so a change to ``minio-init`` cannot pass unnoticed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import boto3
import pytest
from botocore.exceptions import ClientError
from minio import MinioAdmin
from minio.credentials import StaticProvider

from adapters.s3 import S3Storage
from adapters.s3.bucket import LIFECYCLE_RULE_ID
from domain.errors import StorageError
from tests.fixtures.minio import MinioServer
from tests.test_compose_hardening import run_minio_init

pytestmark = pytest.mark.s3
REGION = "us-east-1"


@dataclass(frozen=True)
class Key:
    id: str
    secret: str


@dataclass(frozen=True)
class ComposeMinio:
    url: str
    bucket: str
    root: Key
    worker: Key
    bot: Key

    def client(self, key: Key):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key.id,
            aws_secret_access_key=key.secret,
        )

    def storage(self, key: Key, **options) -> S3Storage:
        return S3Storage(
            self.bucket,
            endpoint_url=self.url,
            region=REGION,
            access_key_id=key.id,
            secret_access_key=key.secret,
            connect_timeout_s=2.0,
            read_timeout_s=5.0,
            max_attempts=1,
            **options,
        )


@pytest.fixture(scope="module")
def compose_minio(minio_server: MinioServer, tmp_path_factory) -> ComposeMinio:
    root = Key(minio_server.endpoint.access_key_id, minio_server.endpoint.secret_access_key)
    suffix = uuid.uuid4().hex[:8]
    bucket, app_user, bot_user = f"p2p-pics-{suffix}", f"p2p-app-{suffix}", f"p2p-bot-{suffix}"
    calls, policies = run_minio_init(
        tmp_path_factory.mktemp("minio-init"),
        {
            "MINIO_ROOT_USER": root.id,
            "MINIO_ROOT_PASSWORD": root.secret,
            "P2P_BUCKET": bucket,
            "P2P_ACCESS_KEY_ID": app_user,
            "P2P_BOT_ACCESS_KEY_ID": bot_user,
        },
    )
    admin = MinioAdmin(
        endpoint=urlsplit(minio_server.url).netloc, credentials=StaticProvider(root.id, root.secret), secure=False
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=minio_server.url,
        region_name=REGION,
        aws_access_key_id=root.id,
        aws_secret_access_key=root.secret,
    )
    secrets: dict[str, str] = {}
    for call in calls:
        match call:
            case ["alias", "set", "local", _, user, password] if (user, password) == (root.id, root.secret):
                pass
            case ["mb", "--ignore-existing", target]:
                s3.create_bucket(Bucket=target.removeprefix("local/"))
            case ["anonymous", "set", "none", target]:
                s3.delete_bucket_policy(Bucket=target.removeprefix("local/"))
            case ["admin", "policy", "create", "local", name, _]:
                admin.policy_add(name, policy=policies[name])
            case ["admin", "user", "add", "local", user, secret]:
                admin.user_add(user, secret)
                secrets[user] = secret
            case ["admin", "policy", "attach", "local", policy, "--user", user]:
                admin.attach_policy([policy], user=user)
            case _:
                pytest.fail(f"minio-init makes a call this test does not replay: mc {' '.join(call)}")
    attached = {tuple(c[4:7]) for c in calls if c[:3] == ["admin", "policy", "attach"]}
    assert attached == {("p2p-app", "--user", app_user), ("p2p-bot-read", "--user", bot_user)}
    worker, bot = Key(app_user, secrets[app_user]), Key(bot_user, secrets[bot_user])
    return ComposeMinio(minio_server.url, bucket, root, worker, bot)


def test_minio_enforces_the_policies(compose_minio):
    """Without this the other tests could not fail: an unknown key is refused."""
    with pytest.raises(ClientError) as refused:
        compose_minio.client(Key("nobody-here", "nothing-at-all")).head_bucket(Bucket=compose_minio.bucket)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


async def test_the_workers_write_and_the_bot_only_reads(compose_minio, caplog):
    worker = compose_minio.storage(compose_minio.worker, expire_days=3)
    await worker.start()  # the bucket minio-init made; the expiry rule set by the workers' user
    try:
        stored = await worker.put("images/job-1.png", b"\x89PNG picture", "image/png", {"job-id": "job-1"})
        assert not [r for r in caplog.records if r.levelno >= 30 and r.name.startswith("adapters.s3")]
    finally:
        await worker.stop()
    root = compose_minio.client(compose_minio.root)
    rules = root.get_bucket_lifecycle_configuration(Bucket=compose_minio.bucket)["Rules"]
    assert [r["ID"] for r in rules] == [LIFECYCLE_RULE_ID]

    caplog.clear()
    bot = compose_minio.storage(compose_minio.bot, expire_days=3)
    await bot.start()  # finds the rule as wanted: no write (it may not), no warning
    try:
        assert not [r for r in caplog.records if r.levelno >= 30 and r.name.startswith("adapters.s3")]
        assert await bot.get(stored.key) == b"\x89PNG picture"
        assert await bot.exists(stored.key) and not await bot.exists("images/none.png")
        link = await bot.link(stored.key)
        assert compose_minio.bot.id in link  # signed by the bot's own key, and MinIO serves it
        async with aiohttp.ClientSession() as http, http.get(link) as response:
            assert (response.status, await response.read()) == (200, b"\x89PNG picture")
        with pytest.raises(StorageError) as refused:
            await bot.put("images/forged.png", b"forged", "image/png", {})
        assert refused.value.params["reason"] == "AccessDenied" and refused.value.params["status"] == 403
    finally:
        await bot.stop()
    bot_client = compose_minio.client(compose_minio.bot)
    for write in (
        lambda: bot_client.put_object(Bucket=compose_minio.bucket, Key=stored.key, Body=b"replaced"),
        lambda: bot_client.delete_object(Bucket=compose_minio.bucket, Key=stored.key),
        lambda: bot_client.delete_bucket_lifecycle(Bucket=compose_minio.bucket),
    ):
        with pytest.raises(ClientError) as refused:
            write()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert root.get_object(Bucket=compose_minio.bucket, Key=stored.key)["Body"].read() == b"\x89PNG picture"


def test_neither_user_reads_another_bucket(compose_minio):
    root = compose_minio.client(compose_minio.root)
    other = f"someone-else-{uuid.uuid4().hex[:8]}"
    root.create_bucket(Bucket=other)
    root.put_object(Bucket=other, Key="secret.png", Body=b"theirs")
    for key in (compose_minio.bot, compose_minio.worker):
        with pytest.raises(ClientError) as refused:
            compose_minio.client(key).get_object(Bucket=other, Key="secret.png")
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
