"""Parametrize each port's contract suite over every adapter of that port.

An adapter whose service cannot start makes its tests fail (never skip): the fixtures that start
Kafka and the S3 server raise when they cannot.
"""

from __future__ import annotations

import pytest

from tests.contract.queue_harness import MemoryQueueHarness


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
