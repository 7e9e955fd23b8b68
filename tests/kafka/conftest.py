"""Fixtures of the Kafka tests: a harness of its own (topics and groups) per test."""

from __future__ import annotations

import pytest

from tests.fixtures.kafka import KafkaQueueHarness


@pytest.fixture
async def harness(kafka_bootstrap):
    h = KafkaQueueHarness(kafka_bootstrap, partitions=6)
    try:
        yield h
    finally:
        await h.close()
