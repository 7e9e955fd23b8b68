"""Dead letters: a message that cannot be decoded is set aside on the dead-letter topic, with the
reason and where it came from in the headers, and the consumer goes on past it. A message whose
dead letter could not be sent stays unfinished (it holds the commit point) and is tried again."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable

from adapters.kafka.errors import describe
from adapters.kafka.offsets import DEAD_LETTERING, Record

log = logging.getLogger(__name__)

REASON_HEADER = "p2p-reason"
Send = Callable[[bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[object]]


def dead_letter_headers(record: Record, reason: str, group: str) -> list[tuple[str, bytes]]:
    """The reason and the source (topic, partition, offset, group, deliveries) of a dead letter,
    then the message's own headers (ours, ``p2p-*``, replaced)."""
    tp = record.part.tp
    return [
        (REASON_HEADER, reason.encode()),
        ("p2p-source-topic", tp.topic.encode()),
        ("p2p-source-partition", str(tp.partition).encode()),
        ("p2p-source-offset", str(record.offset).encode()),
        ("p2p-group", group.encode()),
        ("p2p-attempts", str(record.attempts).encode()),
        *[(k, v) for k, v in record.headers if not k.startswith("p2p-")],
    ]


class DeadLetters:
    """Sets aside the messages of one consumer group. ``send(key, value, headers)`` puts one on
    the dead-letter topic; ``finish(record)`` marks the original finished once it is there."""

    def __init__(self, group: str, send: Send, finish: Callable[[Record], None]) -> None:
        self.group = group
        self._send = send
        self._finish = finish
        self.retries: deque[tuple[Record, str]] = deque()

    async def set_aside(self, record: Record, reason: str) -> None:
        tp = record.part.tp
        try:
            await self._send(record.key, record.value or b"", dead_letter_headers(record, reason, self.group))
        except Exception as exc:  # keep it unfinished (it holds the commit point) and try again
            log.warning(
                "dead-lettering %s[%d]@%d failed (%s); will retry", tp.topic, tp.partition, record.offset, describe(exc)
            )
            record.state = DEAD_LETTERING  # not handed out; still holds the commit point
            self.retries.append((record, reason))
            return
        self._finish(record)

    async def retry(self) -> None:
        """Try again those that could not be sent (of partitions still ours)."""
        for _ in range(len(self.retries)):
            record, reason = self.retries.popleft()
            if record.part.alive:
                await self.set_aside(record, reason)

    def drop_revoked(self) -> None:
        self.retries = deque(x for x in self.retries if x[0].part.alive)

    def clear(self) -> None:
        self.retries.clear()
