"""In-memory delivery log: which job results this process has delivered (bounded, oldest out)."""

from __future__ import annotations

from collections import OrderedDict


class MemoryDeliveryLog:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def first_delivery(self, job_id: str) -> bool:
        if job_id in self._seen:
            return False
        self._seen[job_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    async def confirm(self, job_id: str) -> None:
        """Nothing to do: a claim in memory dies with the process that made it."""

    async def forget(self, job_id: str) -> None:
        self._seen.pop(job_id, None)
