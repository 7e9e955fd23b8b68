"""SQLite delivery log: which results were delivered, shared by every bot process that opens the
same file, and kept across restarts. ``first_delivery`` is one ``INSERT OR IGNORE``: of several
processes racing for one job id exactly one inserts the row. A claim is a lease until
``confirm``: a process killed between claiming and sending leaves an unconfirmed claim, which a
redelivery of the result may take over after ``lease_s``, so the picture is not lost.

Scaling: one host, several processes on a shared volume. Across hosts the same two statements
work on Postgres (``INSERT ... ON CONFLICT DO NOTHING``) or Redis (``SET key 1 NX EX ttl``).
"""

from __future__ import annotations

import time
from pathlib import Path

from adapters.sqlite.db import SqliteDatabase
from adapters.sqlite.user_store import SCHEMA


class SqliteDeliveryLog:
    def __init__(
        self, path: str | Path | SqliteDatabase, keep_s: float = 30 * 24 * 3600, lease_s: float = 300.0
    ) -> None:
        self.lease_s = lease_s
        self.db = path if isinstance(path, SqliteDatabase) else SqliteDatabase(path, SCHEMA)
        if not self.db.schema:
            self.db.schema = SCHEMA
        self.keep_s = keep_s

    async def start(self) -> None:
        await self.db.start()
        await self.db.write("DELETE FROM deliveries WHERE claimed_at < ?", (time.time() - self.keep_s,))

    async def stop(self) -> None:
        await self.db.stop()

    async def first_delivery(self, job_id: str) -> bool:
        now = time.time()
        if await self.db.write(
            "INSERT OR IGNORE INTO deliveries (job_id, claimed_at) VALUES (?, ?)", (job_id, now)
        ) == 1:
            return True
        # Taken over only when the earlier claim was never confirmed and its lease ran out.
        return await self.db.write(
            "UPDATE deliveries SET claimed_at = ? WHERE job_id = ? AND delivered_at IS NULL AND claimed_at < ?",
            (now, job_id, now - self.lease_s),
        ) == 1

    async def confirm(self, job_id: str) -> None:
        await self.db.write("UPDATE deliveries SET delivered_at = ? WHERE job_id = ?", (time.time(), job_id))

    async def forget(self, job_id: str) -> None:
        await self.db.write("DELETE FROM deliveries WHERE job_id = ?", (job_id,))
