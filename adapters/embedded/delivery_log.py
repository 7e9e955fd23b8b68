"""In-memory delivery log: which job results this process has delivered (bounded, oldest out).
A claim in memory dies with the process that made it, so there is no lease to run out: an
unconfirmed claim is held until it is confirmed or given back."""

from __future__ import annotations

from collections import OrderedDict

from domain.ports import Claim


class MemoryDeliveryLog:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, bool] = OrderedDict()  # job id -> confirmed

    async def claim(self, job_id: str) -> Claim:
        confirmed = self._seen.get(job_id)
        if confirmed is not None:
            return Claim.DELIVERED if confirmed else Claim.HELD
        self._seen[job_id] = False
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return Claim.TAKEN

    async def renew(self, job_id: str) -> None:
        """Nothing to renew: the claim lasts as long as the process."""

    async def confirm(self, job_id: str) -> None:
        self._seen[job_id] = True

    async def forget(self, job_id: str) -> None:
        if self._seen.get(job_id) is False:
            del self._seen[job_id]
