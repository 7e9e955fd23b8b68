"""The admin client: topics created when missing (and waited for until every partition has a
leader), topic metadata (the health probe), and the committed offsets of a consumer group
(with their metadata: the delivery counts)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata

from adapters.kafka.config import KafkaConfig

log = logging.getLogger(__name__)


class KafkaAdmin:
    def __init__(self, config: KafkaConfig, client_options: dict[str, Any]) -> None:
        self.config = config
        self.client_options = client_options
        self._client: AIOKafkaAdminClient | None = None

    @property
    def client(self) -> AIOKafkaAdminClient:
        if self._client is None:
            raise KafkaError("the queue is not started")
        return self._client

    async def start(self) -> None:
        self._client = AIOKafkaAdminClient(
            bootstrap_servers=self.config.bootstrap_servers,
            client_id=f"{self.config.client_id}-admin",
            **self.client_options,
            request_timeout_ms=self.config.request_timeout_ms,
        )
        await self._client.start()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def ensure_topics(self) -> list[TopicPartition]:
        """Create the queue's topics that are missing, wait until every partition has a leader
        (the first produce or join then just works); return the partitions of the requests
        topics (one per lane)."""
        admin = self.client
        wanted = self.config.topics
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, n, self.config.replication_factor) for name, n in wanted.items() if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for topic, code, *rest in response.topic_errors:
                if code and code != TopicAlreadyExistsError.errno:
                    raise KafkaError(f"creating topic {topic} failed: error {code} {rest[0] if rest else ''}")
            log.info("created topics %s", ", ".join(t.name for t in missing))
        for _ in range(100):
            described = await self.describe_topics(list(wanted))
            ready = all(
                t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            )
            if ready:
                return sorted(
                    TopicPartition(t["topic"], p["partition"])
                    for t in described
                    if t["topic"] in self.config.lane_topics.values()
                    for p in t["partitions"]
                )
            await asyncio.sleep(0.1)
        raise KafkaError(f"topics {sorted(wanted)} have no leaders")

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        """The brokers' metadata of ``topics`` (partitions, leaders, error codes)."""
        return await self.client.describe_topics(topics)

    async def committed_offsets(
        self, group: str, partitions: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """What ``group`` has committed (offset and metadata), of ``partitions`` or of all."""
        return await self.client.list_consumer_group_offsets(group, partitions=partitions)
