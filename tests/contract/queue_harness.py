"""Harnesses that give the contract suites an adapter of each kind, plus the few hooks a contract
test needs beyond the port (inject a raw message, read dead letters, kill a consumer)."""

from __future__ import annotations

from typing import Protocol

from domain.ports import JobQueue


class QueueHarness(Protocol):
    async def new_queue(self) -> JobQueue:
        """A started adapter on this harness's topics; workers made here share one group."""
        ...

    async def inject_raw_job(self, raw: bytes) -> None: ...

    async def inject_raw_event(self, raw: bytes) -> None: ...

    async def dead_letters(self, at_least: int, timeout: float) -> list[str]:
        """The reasons of the dead letters so far, waiting until there are ``at_least``."""
        ...

    async def crash(self, queue: JobQueue) -> None:
        """End ``queue``'s consumers as a killed process would: nothing acked, nothing committed."""
        ...

    async def close(self) -> None: ...


class MemoryQueueHarness:
    def __init__(self) -> None:
        from adapters.embedded.queue import MemoryJobQueue

        self.queue = MemoryJobQueue()

    async def new_queue(self) -> JobQueue:
        await self.queue.start()
        return self.queue  # one process, one bus: every "worker" shares it

    async def inject_raw_job(self, raw: bytes) -> None:
        await self.queue.publish_raw_job(raw)

    async def inject_raw_event(self, raw: bytes) -> None:
        await self.queue.publish_raw_event(raw)

    async def dead_letters(self, at_least: int, timeout: float) -> list[str]:
        return [d.reason for d in self.queue.dead_letters]

    async def crash(self, queue: JobQueue) -> None:
        self.queue.abandon_consumers()

    async def close(self) -> None:
        await self.queue.stop()
