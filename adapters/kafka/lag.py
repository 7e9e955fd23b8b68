"""The backlog of the worker group: consumer lag on the requests topics (a topic per lane), cached, and refreshed in
the background once a value is known (a status reply must not wait for a broker that is down)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from adapters.kafka.admin import KafkaAdmin
from adapters.kafka.config import KafkaConfig
from adapters.kafka.errors import is_transient

KNOWN_FOR_S = 60.0  # a backlog measured longer ago than this is unknown, not current


class BacklogUnknown(ConnectionError):
    """The backlog cannot be measured now and the last figure is too old to stand for it."""


class Backlog:
    def __init__(self, config: KafkaConfig, client_options: dict[str, Any], admin: KafkaAdmin) -> None:
        self.config = config
        self.client_options = client_options
        self.admin = admin
        self.partitions: list[TopicPartition] = []  # of the requests topics, set on start
        self.by_topic: dict[str, int] = {}  # the last lag measured, topic by topic
        self._offsets: AIOKafkaConsumer | None = None  # group-less: end offsets
        self._known: tuple[float, int] | None = None  # (when, value)
        self._refresh: asyncio.Task[int] | None = None

    async def value(self) -> int:
        """The lag, never older than ``backlog_cache_s`` as far as the caller waits for it: an
        older value is returned as it is and refreshed in the background. One measured more than
        ``KNOWN_FOR_S`` ago (the broker unreachable since) is not given as the current lag:
        ``BacklogUnknown`` at once, so the metric stops reporting a figure that no longer holds."""
        if self._known is not None:
            age = time.monotonic() - self._known[0]
            if age >= self.config.backlog_cache_s and (self._refresh is None or self._refresh.done()):
                self._refresh = asyncio.create_task(self.refresh(), name="kafka-backlog")
            if age >= KNOWN_FOR_S:
                raise BacklogUnknown(f"the backlog was last measured {age:.0f} s ago")
            return self._known[1]
        return await self.refresh()

    async def values(self) -> dict[str, int]:
        """The lag topic by topic, as fresh as ``value``'s."""
        await self.value()
        return dict(self.by_topic)

    async def refresh(self) -> int:
        """Measure the lag now (retrying transient errors; the last value known if it fails)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(6),
            wait=wait_exponential(multiplier=0.1),  # 0.1, 0.2, 0.4, 0.8, 1.6 s
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            return await retrying(self._measure)
        except Exception:
            if self._known:  # best effort: the last value known
                return self._known[1]
            raise

    async def _measure(self) -> int:
        async with asyncio.timeout(5.0):
            by_topic = await self._lag()
        value = sum(by_topic.values())
        self._known, self.by_topic = (time.monotonic(), value), by_topic
        return value

    async def _lag(self) -> dict[str, int]:
        """End offsets minus committed offsets (the log start where the group has none), summed
        per topic."""
        if self._offsets is None:
            _ = self.admin.client  # raises when the queue is not started
            c = self.config
            offsets = AIOKafkaConsumer(
                bootstrap_servers=c.bootstrap_servers,
                **self.client_options,
                client_id=f"{c.client_id}-lag",
                request_timeout_ms=c.request_timeout_ms,
            )
            await offsets.start()
            self._offsets = offsets
        tps = self.partitions
        end = await self._offsets.end_offsets(tps)
        start = await self._offsets.beginning_offsets(tps)
        committed = await self.admin.committed_offsets(self.config.worker_group, tps)
        totals = dict.fromkeys(sorted({tp.topic for tp in tps}), 0)
        for tp in tps:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else start[tp]
            totals[tp.topic] += max(0, end[tp] - max(position, start[tp]))
        return totals

    async def stop_refreshing(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.wait({self._refresh})
            self._refresh = None

    async def close(self) -> None:
        offsets, self._offsets = self._offsets, None
        if offsets is not None:
            await offsets.stop()
