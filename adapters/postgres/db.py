"""One PostgreSQL database used from asyncio: an asyncpg pool, the schema's versioned migrations,
and whether the server can be reached right now.

- ``start`` applies the migrations (``migrations.py``) under a PostgreSQL advisory lock, so that
  several instances starting at once apply each one exactly once. When the server cannot be reached
  it logs one line, keeps trying in the background (1 s, doubling to 30 s) and returns:
  ``is_ready`` stays false meanwhile, and calls wait up to ``wait_s`` for it, then fail with
  ``DatabaseUnavailable``.
- A health check (``SELECT 1`` every ``health_interval_s``) turns readiness false while the server
  is away and true again when it is back; each change is one log line. The pool replaces broken
  connections by itself.
- Nothing here logs or raises the password: the server is named by ``host:port/database``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from adapters.postgres.migrations import MIGRATIONS, Migration, migrate

log = logging.getLogger(__name__)

# What "the server is not there" looks like to asyncpg (refused, reset, timed out, shutting down).
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached in time (the call may be tried again later)."""


def describe(dsn: str) -> str:
    """``user@host:port/database`` of a DSN: never the password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        where = f"{host}:{parts.port or 5432}{parts.path or '/'}"
        return f"{parts.username}@{where}" if parts.username else where
    except ValueError:
        return "the database"


def reason(exc: BaseException) -> str:
    """One line about a connection failure, without secrets (asyncpg's texts carry none)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PostgresDatabase:
    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 30.0,
        wait_s: float = 10.0,
        health_interval_s: float = 2.0,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> None:
        self.dsn = dsn
        self.where = describe(dsn)
        self._password = password or None
        self.min_size, self.max_size = min_size, max(1, max_size)
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self.wait_s = wait_s
        self.health_interval_s = health_interval_s
        self.migrations = migrations
        self.pool: asyncpg.Pool | None = None
        self._ready = False
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._users = 0

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self._users += 1
        if self._users > 1:
            return
        try:
            await self._connect()
        except UNREACHABLE as exc:
            log.error("PostgreSQL at %s is unreachable (%s); not ready, retrying", self.where, reason(exc))
            self._tasks.append(asyncio.create_task(self._reconnect(), name="postgres-connect"))
        except asyncpg.exceptions.InvalidPasswordError as exc:
            log.error("PostgreSQL at %s refused the login (%s); not ready, retrying", self.where, reason(exc))
            self._tasks.append(asyncio.create_task(self._reconnect(), name="postgres-connect"))

    async def _connect(self) -> None:
        pool = await asyncpg.create_pool(
            self.dsn,
            password=self._password,
            min_size=min(self.min_size, self.max_size),
            max_size=self.max_size,
            timeout=self.connect_timeout_s,
            command_timeout=self.command_timeout_s,
        )
        try:
            async with pool.acquire(timeout=self.connect_timeout_s) as conn:
                applied = await migrate(conn, self.migrations)
        except BaseException:
            pool.terminate()
            raise
        if applied:
            log.info("PostgreSQL schema at %s migrated to version %d", self.where, applied[-1])
        self.pool = pool
        self._ready = True
        self._connected.set()
        self._tasks.append(asyncio.create_task(self._health(), name="postgres-health"))

    async def _reconnect(self) -> None:
        """Try again after 1 s, then 2, 4, 8, 16 and every 30 s, until the database answers."""
        await asyncio.sleep(1.0)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((*UNREACHABLE, asyncpg.exceptions.InvalidPasswordError)),
            wait=wait_exponential(multiplier=2.0, max=30.0),
            before_sleep=self._still_unreachable,
        )
        await retrying(self._connect)
        log.warning("PostgreSQL at %s is reachable again; ready", self.where)

    def _still_unreachable(self, state: RetryCallState) -> None:  # after each failed try
        exc = state.outcome.exception() if state.outcome is not None else None
        log.debug("PostgreSQL at %s still unreachable: %s", self.where, reason(exc) if exc else "")

    async def _health(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            try:
                assert self.pool is not None
                async with self.pool.acquire(timeout=self.connect_timeout_s) as conn:
                    await conn.fetchval("SELECT 1", timeout=self.connect_timeout_s)
            except UNREACHABLE as exc:
                self._mark_down(exc)
            except Exception as exc:  # e.g. a password changed under a running pool
                self._mark_down(exc)
            else:
                if not self._ready:
                    self._ready = True
                    log.warning("PostgreSQL at %s is reachable again; ready", self.where)

    def _mark_down(self, exc: BaseException) -> None:
        if self._ready:
            self._ready = False
            log.error("PostgreSQL at %s is unreachable (%s); not ready until it returns", self.where, reason(exc))

    async def stop(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users:
            return
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        pool, self.pool = self.pool, None
        self._ready = False
        self._connected.clear()
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:  # a timeout included
                pool.terminate()

    def is_ready(self) -> bool:
        return self._ready

    # --- use ----------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; waits up to ``wait_s`` for a database that is not reachable yet."""
        if self.pool is None:
            if self._users == 0:
                raise RuntimeError("the database is not started")
            try:
                await asyncio.wait_for(self._connected.wait(), self.wait_s)
            except TimeoutError:
                raise DatabaseUnavailable(f"PostgreSQL at {self.where} is unreachable") from None
        pool = self.pool
        assert pool is not None
        # A pool with every connection in use is busy, not down: waiting for a connection is
        # back-pressure (a burst of updates), so it waits as long as a command may take, and a
        # wait that runs out is not counted as the server being unreachable.
        try:
            conn = await pool.acquire(timeout=max(self.wait_s, self.command_timeout_s))
        except TimeoutError:
            if self._ready:
                raise DatabaseUnavailable(
                    f"PostgreSQL at {self.where} is busy: no free connection of {self.max_size} in "
                    f"{max(self.wait_s, self.command_timeout_s):.0f}s"
                ) from None
            raise DatabaseUnavailable(f"PostgreSQL at {self.where} is unreachable (TimeoutError)") from None
        except UNREACHABLE as exc:
            self._mark_down(exc)
            raise DatabaseUnavailable(f"PostgreSQL at {self.where} is unreachable ({reason(exc)})") from None
        try:
            yield conn
        except UNREACHABLE as exc:
            self._mark_down(exc)
            raise DatabaseUnavailable(f"PostgreSQL at {self.where} is unreachable ({reason(exc)})") from None
        finally:
            await pool.release(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return await conn.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.connection() as conn:
            return await conn.execute(sql, *args)


def changed(status: str) -> int:
    """Rows changed, from a command status such as ``INSERT 0 1`` or ``UPDATE 2``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0
