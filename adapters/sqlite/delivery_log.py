"""SQLite delivery log: which results were delivered, shared by every bot process that opens the
same file, and kept across restarts. ``first_delivery`` is one ``INSERT OR IGNORE``: of several
processes racing for one job id exactly one inserts the row.

Scaling: one host, several processes on a shared volume. Across hosts the same two statements
work on Postgres (``INSERT ... ON CONFLICT DO NOTHING``) or Redis (``SET key 1 NX EX ttl``).
"""

from __future__ import annotations

import time
from pathlib import Path

from adapters.sqlite.db import SqliteDatabase
from adapters.sqlite.user_store import SCHEMA


class SqliteDeliveryLog:
    def __init__(self, path: str | Path | SqliteDatabase, keep_s: float = 30 * 24 * 3600) -> None:
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
        return await self.db.write(
            "INSERT OR IGNORE INTO deliveries (job_id, claimed_at) VALUES (?, ?)", (job_id, time.time())
        ) == 1

    async def forget(self, job_id: str) -> None:
        await self.db.write("DELETE FROM deliveries WHERE job_id = ?", (job_id,))
