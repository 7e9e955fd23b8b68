"""Kafka least privilege: the bots and the workers log in as two SASL users, each with only the ACLs
of tools/kafka_acls.py (the same commands as docs/deploy-kubernetes.md), on a real broker with
authorization on (KRaft's StandardAuthorizer, nothing allowed without an ACL; tools/kafka_broker.py
``acls=True``). Each user does its whole job through the real queue adapter, and cannot do the
other role's: the bot's user cannot write results, the workers' user cannot write jobs."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from adapters.kafka.queue import KafkaJobQueue
from adapters.kafka.security import KafkaSecurity
from domain.codec import encode_event, encode_job
from domain.models import Job, JobStatus, Result
from tests.fixtures.kafka import REPO, KafkaQueueHarness, broker_script

pytestmark = pytest.mark.kafka


def acl_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafka_acls", REPO / "tools" / "kafka_acls.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["kafka_acls"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@dataclass
class AclBroker:
    """A broker of this module's own with authorization on and the two roles' ACLs granted."""

    broker: Any  # kafka_broker.Broker
    names: Any  # kafka_acls.Names of this broker's topics, groups and users
    passwords: dict[str, str] = field(repr=False)

    def queue(self, user: str, **overrides: object) -> KafkaJobQueue:
        n = self.names
        security = KafkaSecurity(
            protocol="SASL_SSL",
            mechanism="SCRAM-SHA-512",
            username=user,
            password=self.passwords[user],
            ca_file=self.broker.ca_file,
        )
        return KafkaJobQueue(
            self.broker.sasl_bootstrap,
            requests_topic=n.requests_topic,
            results_topic=n.results_topic,
            dead_letter_topic=n.dead_letter_topic,
            bot_group=n.bot_group,
            worker_group=n.worker_group,
            partitions=2,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=500,
            start_timeout_s=30,
            publish_timeout_s=10,
            client_id=f"acl-{user}",
            security=security,
            **overrides,
        )


async def create_topics(bootstrap: str, names: Any) -> None:
    """The administrator creates the topics beforehand (the roles have no CREATE)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(names.requests_topic, 2, 1),
                NewTopic(names.relaxed_topic, 2, 1),
                NewTopic(names.results_topic, 2, 1),
                NewTopic(names.dead_letter_topic, 1, 1),
            ]
        )
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def acl_broker() -> Iterator[AclBroker]:
    kb, acls = broker_script(), acl_script()
    suffix = uuid.uuid4().hex[:8]
    names = acls.Names(
        bot_user="p2p-bot",
        worker_user="p2p-worker",
        requests_topic=f"acl-{suffix}.requests",
        results_topic=f"acl-{suffix}.results",
        dead_letter_topic=f"acl-{suffix}.dead-letters",
        bot_group=f"acl-{suffix}.bots",
        worker_group=f"acl-{suffix}.workers",
    )
    passwords = {names.bot_user: f"pw-{uuid.uuid4().hex}", names.worker_user: f"pw-{uuid.uuid4().hex}"}
    try:
        broker = kb.start(sasl_users=passwords, acls=True)
    except Exception as exc:  # fail loudly: these tests must not be skipped
        pytest.fail(f"the Apache Kafka broker with ACLs could not start: {exc}", pytrace=False)
    try:
        kb._run_sync(lambda: create_topics(broker.bootstrap, names))  # the administrator's listener
        for grant in acls.grants(names):
            kb.acl_command(broker, *grant.args())
        yield AclBroker(broker, names, passwords)
    finally:
        kb.stop(broker)


def a_job(n: int) -> Job:
    return Job(job_id=f"acl-{n}", user_id=7, chat_id=7, prompt="a lighthouse", width=256, height=256, seed=n)


def test_the_granted_acls_are_the_documented_ones():
    """docs/deploy-kubernetes.md shows exactly the commands the test broker got."""
    docs = (REPO / "docs" / "deploy-kubernetes.md").read_text()
    for command in acl_script().commands():
        assert command in docs, command


async def test_each_role_does_its_job_with_its_own_user(acl_broker):
    """Jobs go out as the bot, are taken and answered as a worker, and the result comes back to
    the bot: publishing, both groups (joins, commits with delivery counts), the bot's backlog
    read of the workers' group, and dead letters of each role."""
    n = acl_broker.names
    bot, worker = acl_broker.queue(n.bot_user), acl_broker.queue(n.worker_user)
    harness = KafkaQueueHarness(acl_broker.broker.bootstrap, dead_letter_topic=n.dead_letter_topic)  # the admin
    try:
        await bot.start()
        await worker.start()
        await bot.publish_job(a_job(1))
        [delivery] = await worker.receive_jobs(1, 30)
        job = delivery.message
        assert isinstance(job, Job) and job.job_id == "acl-1"
        await worker.publish_event(Result(**job.ref_fields(), status=JobStatus.DONE, image_key="images/acl-1.png"))
        await delivery.ack()
        [event] = await bot.receive_events(1, 30)
        assert isinstance(event.message, Result) and event.message.job_id == "acl-1"
        await event.ack()
        assert await bot.backlog() == 0  # the workers' committed offsets, read by the bot's user

        # What a role cannot decode goes to the dead letters, written by that role's user.
        await bot.publish_raw_job(b"not a job")
        await worker.publish_raw_event(b"not an event")
        assert await worker.receive_jobs(1, 3) == []
        assert await bot.receive_events(1, 3) == []
        records = await harness.dead_letter_records(at_least=2, timeout=20)
        assert sorted(r["headers"]["p2p-group"] for r in records) == sorted([n.bot_group, n.worker_group])
    finally:
        await bot.stop()
        await worker.stop()


async def test_the_bots_user_cannot_write_results(acl_broker):
    """A bot (or whoever holds its password) cannot forge results or progress."""
    n = acl_broker.names
    bot = acl_broker.queue(n.bot_user)
    forged = Result(job_id="forged", user_id=1, chat_id=1, status=JobStatus.DONE, image_url="https://evil.example/x")
    try:
        await bot.start()
        with pytest.raises(TopicAuthorizationFailedError):
            await bot.publish_raw_event(encode_event(forged))
        with pytest.raises(GroupAuthorizationFailedError):  # nor take jobs as a worker
            await bot.receive_jobs(1, 10)
    finally:
        await bot.stop(commit=False)


async def test_the_workers_user_cannot_write_jobs(acl_broker):
    """A worker (or whoever holds its password) cannot queue jobs for other workers."""
    n = acl_broker.names
    worker = acl_broker.queue(n.worker_user)
    try:
        await worker.start()
        with pytest.raises(TopicAuthorizationFailedError):
            await worker.publish_job(a_job(2))
        with pytest.raises(TopicAuthorizationFailedError):
            await worker.publish_raw_job(encode_job(a_job(3)))
        with pytest.raises(GroupAuthorizationFailedError):  # nor read results as a bot
            await worker.receive_events(1, 10)
    finally:
        await worker.stop(commit=False)


def test_acl_tool_refuses_what_is_not_granted(acl_broker):
    """The ACLs on the broker are exactly the grants: listing the bot's shows no Write on results."""
    kb, n = broker_script(), acl_broker.names
    listed = kb.acl_command(acl_broker.broker, "--list", "--topic", n.results_topic)
    assert f"User:{n.worker_user}" in listed and "operation=WRITE" in listed
    assert f"User:{n.bot_user}, host=*, operation=READ" in listed
    assert f"User:{n.bot_user}, host=*, operation=WRITE" not in listed
