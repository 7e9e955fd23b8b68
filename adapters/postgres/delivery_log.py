"""PostgreSQL delivery log: which results were delivered, shared by every bot instance on every host.

The same semantics as the SQLite log. ``claim`` is one ``INSERT ... ON CONFLICT DO NOTHING``: of
several instances racing for one job id exactly one inserts the row. A claim is a lease until
``confirm``; an unconfirmed claim is taken over by an ``UPDATE`` whose condition is evaluated again
on the row's latest version under concurrency (so of two instances taking over one claim only one
succeeds):

- at once by the same bot instance restarted (the same ``owner`` name, a new incarnation), or
- by any instance once the lease ran out without a renewal.

Lease times come from the database server's clock, so the hosts' clocks need not agree.
"""

from __future__ import annotations

import uuid

from adapters.postgres.db import PostgresDatabase, changed
from domain.ports import Claim

NOW = "extract(epoch from clock_timestamp())::double precision"


class PostgresDeliveryLog:
    def __init__(
        self,
        db: PostgresDatabase,
        keep_s: float = 30 * 24 * 3600,
        lease_s: float = 15.0,
        owner: str = "",
    ) -> None:
        self.db = db
        self.keep_s = keep_s
        self.lease_s = lease_s
        self.owner = owner
        self.incarnation = uuid.uuid4().hex  # this process: a restart is a new incarnation

    async def start(self) -> None:
        await self.db.start()
        if self.db.is_ready():
            await self.db.execute(f"DELETE FROM deliveries WHERE claimed_at < {NOW} - $1", self.keep_s)

    async def stop(self) -> None:
        await self.db.stop()

    def is_ready(self) -> bool:
        return self.db.is_ready()

    async def claim(self, job_id: str) -> Claim:
        async with self.db.connection() as conn:
            inserted = await conn.execute(
                f"INSERT INTO deliveries (job_id, claimed_at, owner, incarnation) VALUES ($1, {NOW}, $2, $3) "
                "ON CONFLICT (job_id) DO NOTHING",
                job_id,
                self.owner,
                self.incarnation,
            )
            if changed(inserted) == 1:
                return Claim.TAKEN
            # Taken over only when the earlier claim was never confirmed and its holder is gone:
            # its lease ran out, or it was this instance before a restart.
            taken = await conn.execute(
                f"UPDATE deliveries SET claimed_at = {NOW}, owner = $2, incarnation = $3 "
                "WHERE job_id = $1 AND delivered_at IS NULL AND incarnation != $3 "
                f"AND (claimed_at < {NOW} - $4 OR (owner = $2 AND owner != ''))",
                job_id,
                self.owner,
                self.incarnation,
                self.lease_s,
            )
            if changed(taken) == 1:
                return Claim.TAKEN
            delivered = await conn.fetchval("SELECT delivered_at FROM deliveries WHERE job_id = $1", job_id)
            return Claim.DELIVERED if delivered is not None else Claim.HELD

    async def renew(self, job_id: str) -> None:
        await self.db.execute(
            f"UPDATE deliveries SET claimed_at = {NOW} WHERE job_id = $1 AND incarnation = $2 AND delivered_at IS NULL",
            job_id,
            self.incarnation,
        )

    async def confirm(self, job_id: str) -> None:
        await self.db.execute(
            f"UPDATE deliveries SET delivered_at = {NOW} WHERE job_id = $1 AND delivered_at IS NULL", job_id
        )

    async def forget(self, job_id: str) -> None:
        await self.db.execute(
            "DELETE FROM deliveries WHERE job_id = $1 AND incarnation = $2 AND delivered_at IS NULL",
            job_id,
            self.incarnation,
        )
