"""Parametrize each port's contract suite over every adapter of that port.

An adapter whose service cannot start makes its tests fail (never skip): the fixtures that start
Kafka and the S3 server raise when they cannot.
"""

from __future__ import annotations

import pytest

from tests.harness import MemoryQueueHarness


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
async def queue_harness(request):
    if request.param == "memory":
        harness = MemoryQueueHarness()
    else:
        from tests.fixtures.kafka import KafkaQueueHarness

        bootstrap = request.getfixturevalue("kafka_bootstrap")
        harness = KafkaQueueHarness(bootstrap)
    try:
        yield harness
    finally:
        await harness.close()
