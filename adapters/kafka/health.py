"""Readiness of the Kafka queue: started, and the broker reachable (followed by every client
call and by a small periodic probe)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.kafka.errors import describe, is_transient

log = logging.getLogger(__name__)


class Health:
    def __init__(self) -> None:
        self.started = False
        self.connected = False

    def is_ready(self) -> bool:
        return self.started and self.connected

    def up(self) -> None:
        """Started and connected (after a successful start)."""
        self.started = self.connected = True

    def down(self) -> None:
        """Stopped."""
        self.started = self.connected = False

    def mark_down(self, exc: BaseException) -> None:
        """A client call failed: not ready while the broker is unreachable."""
        if self.connected and is_transient(exc):
            log.warning("Kafka unreachable: %s", describe(exc))
            self.connected = False

    def mark_up(self) -> None:
        """A client call went through: ready again."""
        if self.started and not self.connected:
            log.info("Kafka reachable again")
            self.connected = True

    async def watch(self, probe: Callable[[], Awaitable[Any]], interval_s: float) -> None:
        """Run ``probe`` (a small metadata request) every ``interval_s`` so that readiness
        follows the connection while no other call is made."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                async with asyncio.timeout(max(1.0, interval_s * 3)):
                    await probe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    log.warning("Kafka unreachable: %s", describe(exc))
                    self.connected = False
            else:
                self.mark_up()
