"""Offset and commit bookkeeping of one consumer, with the delivery counts that ride on commits.

Pure logic (no broker): what this consumer holds of each assigned partition, which offset may be
committed (the contiguous finished prefix: up to the first message not finished yet) and the
offset-commit metadata that carries, across processes, how many times each unfinished message at
the commit point has been handed out: ``"p2p1:<offset - commit point>=<deliveries>,..."``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka import TopicPartition

IN_FLIGHT, WAITING, CONFIRMING, DONE = "in-flight", "waiting", "confirming", "done"
DEAD_LETTERING = "dead-lettering"
METADATA_PREFIX = "p2p1:"  # versioned offset-commit metadata
METADATA_MAX = 3000  # the broker's offset.metadata.max.bytes defaults to 4096


class Record:
    """One message of a partition this consumer has taken and not finished."""

    __slots__ = ("attempts", "current", "headers", "key", "message", "offset", "part", "state", "value")

    def __init__(
        self, part: PartitionBook, offset: int, key: bytes | None, value: bytes | None, headers: Any, attempts: int
    ) -> None:
        self.part = part
        self.offset = offset
        self.key = key
        self.value = value
        self.headers: list[tuple[str, bytes]] = list(headers or ())
        self.attempts = attempts  # deliveries so far, by every owner of the partition
        self.state = IN_FLIGHT
        self.message: Any = None  # the decoded message
        self.current: Any = None  # the delivery handed out last (acks of older ones do nothing)

    def __repr__(self) -> str:
        return f"<Record {self.part.tp.topic}[{self.part.tp.partition}]@{self.offset} {self.state}>"


def encode_counts(point: int, attempts: dict[int, int]) -> str:
    """The commit metadata for commit point ``point``: the delivery counts of the unfinished
    messages at and after it (those never delivered left out), nearest first, within the
    broker's size limit; "" when there are none."""
    counts = [f"{offset - point}={n}" for offset, n in sorted(attempts.items()) if n]
    meta = METADATA_PREFIX + ",".join(counts)
    while len(meta) > METADATA_MAX and counts:  # keep the ones nearest the commit point
        counts.pop()
        meta = METADATA_PREFIX + ",".join(counts)
    return meta if counts else ""


def decode_counts(offset: int, metadata: str | None) -> dict[int, int]:
    """Delivery counts by absolute offset from commit metadata (what another owner left, or
    garbage: anything not ours is ignored)."""
    found: dict[int, int] = {}
    if offset < 0 or not metadata or not metadata.startswith(METADATA_PREFIX):
        return found
    for item in metadata[len(METADATA_PREFIX) :].split(","):
        rel, _, n = item.partition("=")
        with contextlib.suppress(ValueError):
            found[offset + int(rel)] = int(n)
    return found


class PartitionBook:
    """What this consumer knows of one assigned partition since it was assigned."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.alive = True  # False once revoked: its records are dropped, acks do nothing
        self.outstanding: dict[int, Record] = {}  # offset -> record not finished yet
        self.seen_until: int | None = None  # the offset after the last message handed to us
        self.prior_attempts: dict[int, int] = {}  # from the commit metadata of the last owner
        self.loaded = False  # prior_attempts read (before its first message is taken)
        self.last_commit: tuple[int, str] | None = None

    def admit(self, offset: int, key: bytes | None, value: bytes | None, headers: Any) -> Record | None:
        """Take the message at ``offset`` as unfinished (with its earlier delivery count); None
        when it was taken before."""
        if self.seen_until is not None and offset < self.seen_until:
            return None  # cannot happen without a seek; cheap to be sure
        self.seen_until = offset + 1
        record = Record(self, offset, key, value, headers, self.prior_attempts.pop(offset, 0))
        self.outstanding[offset] = record
        return record

    def finish(self, record: Record) -> None:
        record.state = DONE
        self.outstanding.pop(record.offset, None)

    def commit_target(self) -> tuple[int, str] | None:
        """The contiguous finished prefix: up to the first unfinished message, or past the last
        message seen when all are finished; with the unfinished messages' delivery counts."""
        if self.outstanding:
            point = min(self.outstanding)
        elif self.seen_until is not None:
            point = self.seen_until
        else:
            return None
        return point, encode_counts(point, {o: r.attempts for o, r in self.outstanding.items()})

    def pending_commit(self) -> tuple[int, str] | None:
        """The commit target when it differs from what was committed last; None: nothing new."""
        target = self.commit_target() if self.alive else None
        return target if target is not None and target != self.last_commit else None

    def load_commit(self, offset: int, metadata: str | None) -> None:
        self.last_commit = (offset, metadata or "")
        self.prior_attempts.update(decode_counts(offset, metadata))
