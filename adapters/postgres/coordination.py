"""What bot instances on several hosts share beyond users and deliveries, through PostgreSQL:

- **The global send budget.** Telegram allows a bot about 30 messages a second in all. Each live
  instance heartbeats a row of ``bot_instances`` (every ``heartbeat_s``); an instance's share of the
  budget is ``rate / live instances`` (rounded down, at least 1), so together they stay within it. A
  killed instance stops counting after ``ttl_s``; a stopped one at once (its row goes). An instance
  waits one heartbeat after it first registers before it sends, so the others have lowered their
  share by then.
- **Per-chat pacing.** A chat's messages may leave from several instances (the reply to a prompt
  from the instance that got the update, the picture from the one that holds the chat's events).
  A send holds the chat's row (``chat_pacing``, a lease of ``lease_s``) from before the call until
  it has finished, then sets when the chat's next message may go; another instance waits for that.
  So the server sees one chat's messages at least the per-chat interval apart, across instances.
  The holder renews the leases of the chats it holds with each heartbeat: a call that waits long
  for the global budget inside its hold (a backlog of hundreds of pictures) keeps the chat, so no
  other instance sends to it in the meantime; only a holder that died lets its leases run out.

Times come from the database server's clock. While the database cannot be reached, sends are
paced by each instance alone (a line in the log says so once per outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Callable

from adapters.postgres.db import PostgresDatabase

log = logging.getLogger(__name__)

NOW = "extract(epoch from clock_timestamp())::double precision"

_ACQUIRE = f"""
WITH t AS (SELECT {NOW} AS now),
took AS (
    INSERT INTO chat_pacing AS c (chat_id, holder, lease_until, next_at)
    SELECT $1, $2, t.now + $3, 0 FROM t
    ON CONFLICT (chat_id) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until
    WHERE c.next_at <= (SELECT now FROM t)
      AND (c.holder IS NULL OR c.holder = excluded.holder OR c.lease_until < (SELECT now FROM t))
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM took) AS granted,
       (SELECT GREATEST(c.next_at - t.now,
                        CASE WHEN c.holder IS NOT NULL AND c.lease_until >= t.now THEN 0.02 ELSE 0 END)
        FROM chat_pacing c, t WHERE c.chat_id = $1) AS wait
"""
_RELEASE = f"UPDATE chat_pacing SET holder = NULL, next_at = {NOW} + $3 WHERE chat_id = $1 AND holder = $2"
_RENEW = f"UPDATE chat_pacing SET lease_until = {NOW} + $2 WHERE holder = $1 AND chat_id = ANY($3::bigint[])"


class PostgresSendCoordination:
    def __init__(
        self,
        db: PostgresDatabase,
        *,
        owner: str = "",
        rate: float = 30.0,
        window_s: float = 1.0,
        heartbeat_s: float = 1.0,
        ttl_s: float = 3.0,
        lease_s: float = 10.0,
        on_share: Callable[[int], None] | None = None,
    ) -> None:
        self.db = db
        self.owner = owner
        self.incarnation = uuid.uuid4().hex
        self.budget = max(1, round(rate * window_s))  # calls in any window, all instances together
        self.heartbeat_s = heartbeat_s
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        self.on_share = on_share
        self.live = 1
        self.share = self.budget
        self._task: asyncio.Task[None] | None = None
        self._degraded = False
        self._held: dict[int, int] = {}  # chat -> holds of it by this instance now (leases renewed)

    async def start(self) -> None:
        await self.db.start()
        await self._beat()
        await asyncio.sleep(self.heartbeat_s * 1.3)  # the others see this one and lower their share
        await self._beat()
        self._task = asyncio.create_task(self._heartbeat(), name="bot-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.db.execute("DELETE FROM bot_instances WHERE incarnation = $1", self.incarnation), 3
            )
        await self.db.stop()

    # --- the global budget --------------------------------------------------------------------
    async def _beat(self) -> None:
        try:
            async with self.db.connection() as conn:
                await conn.execute(
                    f"INSERT INTO bot_instances (incarnation, owner, seen_at) VALUES ($1, $2, {NOW}) "
                    "ON CONFLICT (incarnation) DO UPDATE SET seen_at = excluded.seen_at",
                    self.incarnation,
                    self.owner,
                )
                live = await conn.fetchval(
                    f"SELECT COUNT(*) FROM bot_instances WHERE seen_at >= {NOW} - $1", self.ttl_s
                )
                await conn.execute(f"DELETE FROM bot_instances WHERE seen_at < {NOW} - 3600")
                if self._held:
                    await conn.execute(_RENEW, self.incarnation, self.lease_s, list(self._held))
        except Exception as exc:  # keep the share it had; the database's own line says why
            log.debug("bot heartbeat failed: %s", type(exc).__name__)
            return
        self._set_live(max(1, int(live)))

    def _set_live(self, live: int) -> None:
        share = max(1, math.floor(self.budget / live))
        if live != self.live or share != self.share:
            log.info(
                "%d bot instance(s) live: this one sends at most %d of the %d calls per second",
                live,
                share,
                self.budget,
            )
        self.live, self.share = live, share
        if self.on_share is not None:
            self.on_share(share)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self._beat()

    # --- per-chat pacing ----------------------------------------------------------------------------
    async def acquire(self, chat_id: int) -> bool:
        """Wait until this instance may send to ``chat_id``, and hold the chat until ``release``.
        False: the database is away, paced by this instance alone."""
        while True:
            try:
                row = await self.db.fetch(_ACQUIRE, chat_id, self.incarnation, self.lease_s)
            except Exception as exc:
                if not self._degraded:
                    self._degraded = True
                    log.warning(
                        "chat pacing across instances is off while the database is away (%s)", type(exc).__name__
                    )
                return False
            self._degraded = False
            granted, wait = row[0]["granted"], row[0]["wait"]
            if granted:
                self._held[chat_id] = self._held.get(chat_id, 0) + 1
                return True
            await asyncio.sleep(min(max(wait or 0.0, 0.02), 2.0))

    async def release(self, chat_id: int, next_in_s: float) -> None:
        """The call has finished: the chat's next message no sooner than ``next_in_s`` from now."""
        holds = self._held.pop(chat_id, 0) - 1
        if holds > 0:
            self._held[chat_id] = holds
        try:
            await self.db.execute(_RELEASE, chat_id, self.incarnation, next_in_s)
        except Exception as exc:  # the lease runs out by itself
            log.debug("releasing chat %s failed: %s", chat_id, type(exc).__name__)
