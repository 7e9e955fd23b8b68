"""One SQLite database used from asyncio: a connection on a dedicated thread.

WAL journal (readers never wait for the writer), ``synchronous=NORMAL`` (a commit is durable once
the WAL is checkpointed; a power cut may lose the last commits, never corrupt the file), a busy
timeout so that several processes on one host can share the file, and ``BEGIN IMMEDIATE`` for
read-check-write transactions so two processes cannot both pass a check before either writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SqliteDatabase:
    def __init__(
        self,
        path: str | Path,
        schema: str = "",
        busy_timeout_s: float = 10.0,
        columns: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        # Columns added after a table was first made: (table, column, definition); added to a
        # database made by an earlier version when missing (CREATE TABLE IF NOT EXISTS leaves
        # an existing table as it is).
        self.columns = tuple(columns)
        self.busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._users = 0

    async def start(self) -> None:
        self._users += 1
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        await self.run(self._open)

    def _open(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        if self.schema:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in self.schema.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                for table, column, definition in self.columns:
                    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                    if column not in present:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn

    async def stop(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users or self._executor is None:
            return
        executor, self._executor = self._executor, None
        await asyncio.get_running_loop().run_in_executor(executor, self._close)
        executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise RuntimeError("the database is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; use it only from functions passed to ``run`` (the database thread)."""
        assert self._conn is not None
        return self._conn

    async def read(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        return await self.run(lambda: self.conn.execute(sql, params).fetchall())

    async def write(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        return await self.run(lambda: self.conn.execute(sql, params).rowcount)

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction (on the database thread)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
