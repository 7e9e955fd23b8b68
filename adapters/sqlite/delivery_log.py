"""SQLite delivery log: which results were delivered, shared by every bot process that opens the
same file, and kept across restarts.

``claim`` is one ``INSERT OR IGNORE``: of several processes racing for one job id exactly one
inserts the row. A claim is a lease until ``confirm``: the process delivering renews it while the
send takes long (flood control), and a process killed between claiming and confirming leaves an
unconfirmed claim that is taken over

- at once by the same bot instance restarted (the same ``owner`` name, a new incarnation), or
- by any instance once the lease ran out without a renewal,

so the picture is not lost. Across hosts the same statements work on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from adapters.sqlite.db import SqliteDatabase
from adapters.sqlite.user_store import database
from domain.ports import Claim


class SqliteDeliveryLog:
    def __init__(
        self,
        path: str | Path | SqliteDatabase,
        keep_s: float = 30 * 24 * 3600,
        lease_s: float = 15.0,
        owner: str = "",
    ) -> None:
        self.lease_s = lease_s
        self.db = path if isinstance(path, SqliteDatabase) else database(path)
        self.keep_s = keep_s
        self.owner = owner
        self.incarnation = uuid.uuid4().hex  # this process: a restart is a new incarnation

    async def start(self) -> None:
        await self.db.start()
        await self.db.write("DELETE FROM deliveries WHERE claimed_at < ?", (time.time() - self.keep_s,))

    async def stop(self) -> None:
        await self.db.stop()

    async def claim(self, job_id: str) -> Claim:
        now = time.time()

        def tx(conn: sqlite3.Connection) -> Claim:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO deliveries (job_id, claimed_at, owner, incarnation) VALUES (?, ?, ?, ?)",
                (job_id, now, self.owner, self.incarnation),
            ).rowcount
            if inserted == 1:
                return Claim.TAKEN
            # Taken over only when the earlier claim was never confirmed and its holder is gone:
            # its lease ran out, or it was this instance before a restart.
            taken = conn.execute(
                "UPDATE deliveries SET claimed_at = ?, owner = ?, incarnation = ? "
                "WHERE job_id = ? AND delivered_at IS NULL AND incarnation != ? "
                "AND (claimed_at < ? OR (owner = ? AND owner != ''))",
                (now, self.owner, self.incarnation, job_id, self.incarnation, now - self.lease_s, self.owner),
            ).rowcount
            if taken == 1:
                return Claim.TAKEN
            row = conn.execute("SELECT delivered_at FROM deliveries WHERE job_id = ?", (job_id,)).fetchone()
            return Claim.DELIVERED if row is not None and row[0] is not None else Claim.HELD

        return await self.db.run(self.db.transaction, tx)

    async def renew(self, job_id: str) -> None:
        await self.db.write(
            "UPDATE deliveries SET claimed_at = ? WHERE job_id = ? AND incarnation = ? AND delivered_at IS NULL",
            (time.time(), job_id, self.incarnation),
        )

    async def confirm(self, job_id: str) -> None:
        await self.db.write(
            "UPDATE deliveries SET delivered_at = ? WHERE job_id = ? AND delivered_at IS NULL", (time.time(), job_id)
        )

    async def forget(self, job_id: str) -> None:
        await self.db.write(
            "DELETE FROM deliveries WHERE job_id = ? AND incarnation = ? AND delivered_at IS NULL",
            (job_id, self.incarnation),
        )
