"""Parametrize each port's contract suite over every adapter of that port.

An adapter whose service cannot start makes its tests fail (never skip): the fixtures that start
Kafka and the S3 server raise when they cannot.
"""

from __future__ import annotations

import pytest

from tests.contract.queue_harness import MemoryQueueHarness
from tests.fixtures.postgres import postgres_db


@pytest.fixture(
    params=[
        "memory",
        pytest.param("kafka", marks=pytest.mark.kafka),
        pytest.param("kafka-sasl-ssl", marks=pytest.mark.kafka),
    ]
)
async def queue_harness(request):
    if request.param == "memory":
        harness = MemoryQueueHarness()
    elif request.param == "kafka":
        from tests.fixtures.kafka import KafkaQueueHarness

        bootstrap = request.getfixturevalue("kafka_bootstrap")
        harness = KafkaQueueHarness(bootstrap)
    else:  # the real broker's SASL_SSL listener, SCRAM-SHA-512, a CA of the fixture's own
        from tests.fixtures.kafka import KafkaQueueHarness

        secure = request.getfixturevalue("kafka_sasl_ssl")
        harness = KafkaQueueHarness(secure.bootstrap, security=secure.security())
    try:
        yield harness
    finally:
        await harness.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request, tmp_path):
    """The user store under test (users, jobs, credits, lanes): each adapter of the port."""
    from adapters.embedded.user_store import MemoryUserStore
    from adapters.sqlite.user_store import SqliteUserStore

    if request.param == "memory":
        s = MemoryUserStore()
    elif request.param == "sqlite":
        s = SqliteUserStore(tmp_path / "users.db")
    else:
        from adapters.postgres import PostgresUserStore

        s = PostgresUserStore(postgres_db(request.getfixturevalue("postgres_url")))
    await s.start()
    yield s
    await s.stop()
