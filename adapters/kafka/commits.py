"""Committing one consumer's finished prefix (with the delivery counts) in the background."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from adapters.kafka.config import KafkaConfig
from adapters.kafka.errors import describe
from adapters.kafka.health import Health
from adapters.kafka.offsets import PartitionBook

log = logging.getLogger(__name__)


class Committer:
    """Commits the partitions in ``parts`` (the consumer's live dict) on ``consumer``."""

    def __init__(
        self, group: str, parts: dict[TopicPartition, PartitionBook], config: KafkaConfig, health: Health
    ) -> None:
        self.group = group
        self.parts = parts
        self.config = config
        self.health = health
        self.consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()  # something to commit: within the interval
        self._loop: asyncio.Task[None] | None = None

    def start(self, consumer: AIOKafkaConsumer, name: str) -> None:
        self.consumer = consumer
        self._loop = asyncio.create_task(self._run(), name=name)

    async def stop_loop(self) -> None:
        if self._loop:
            self._loop.cancel()
            await asyncio.wait({self._loop})  # (a cancellation of the caller still propagates)
            self._loop = None

    def want(self) -> None:
        """Something was finished (or handed out): commit within ``commit_interval_ms``."""
        self._wanted.set()

    async def commit(self, parts: list[PartitionBook] | None = None) -> None:
        """Commit the finished prefix (and delivery counts) of ``parts`` (default: all) now."""
        consumer = self.consumer
        if consumer is None:
            return
        async with self._lock:
            offsets: dict[TopicPartition, tuple[int, str]] = {}
            for part in parts if parts is not None else list(self.parts.values()):
                target = part.pending_commit()
                if target is not None:
                    offsets[part.tp] = target
            if not offsets:
                return
            await consumer.commit(offsets)
            for tp, target in offsets.items():
                book = self.parts.get(tp)
                if book is not None:
                    book.last_commit = target

    async def _run(self) -> None:
        """Acks return at once, and one commit request carries everything finished within
        ``commit_interval_ms`` (a crash in that window only means the work is done again, which
        is safe: every step is idempotent by job id). The delivery counts ride on the same
        commits: a job that kills its worker within that window of being handed out is not
        counted, one that kills it later (in generation) is."""
        delay = 0.1
        interval = self.config.commit_interval_ms / 1000
        while True:
            await self._wanted.wait()
            if interval > 0:
                await asyncio.sleep(interval)
            self._wanted.clear()
            try:
                async with asyncio.timeout(self.config.request_timeout_ms / 1000):
                    await self.commit()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except (CommitFailedError, IllegalStateError) as exc:
                # The group is rebalancing: the revoke callback commits, the new owner goes on.
                log.info("commit on %s skipped: %s", self.group, describe(exc))
            except Exception as exc:
                log.warning("commit on %s failed: %s; retrying", self.group, describe(exc))
                self.health.mark_down(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                self._wanted.set()
