"""In-memory job queue (asyncio): the embedded default and the reference for the queue contract.

Messages are kept encoded, exactly as they would travel on Kafka, so the codec, dead letters and
redelivery behave the same way as on the real broker.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from opentelemetry import propagate

from domain.codec import decode_event, decode_request, encode_cancel, encode_event, encode_job
from domain.errors import UndecodableMessage
from domain.lanes import LaneTurns
from domain.models import Cancel, Event, Job, Lane

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class DeadLetter:
    stream: str
    raw: bytes
    reason: str


@dataclass
class _Entry:
    seq: int
    raw: bytes
    headers: dict[str, str] = field(default_factory=dict)
    deliveries: int = 0
    lane: Lane = Lane.PRIORITY


@dataclass
class MemoryDelivery(Generic[T]):
    """``attempt``: the entry's deliveries so far, this one included (a release and a consumer
    that went away both count, a ``hand_back`` does not), for the worker's poison-job rule."""

    _message: T
    _entry: _Entry
    _stream: _Stream
    attempt: int = 1
    done: bool = field(default=False)

    @property
    def message(self) -> T:
        return self._message

    @property
    def carrier(self) -> dict[str, str]:
        """The trace context the message was published with."""
        return self._entry.headers

    async def ack(self) -> None:
        if not self.done:
            self.done = True
            self._stream.in_flight.pop(self._entry.seq, None)

    async def release(self) -> None:
        if not self.done:
            self.done = True
            self._stream.requeue(self._entry)

    async def hand_back(self) -> None:
        """A release on a planned stop: delivered again, this delivery not counted."""
        if not self.done:
            self.done = True
            self._entry.deliveries = max(0, self._entry.deliveries - 1)
            self._stream.requeue(self._entry)


class _Stream:
    """One topic with a single consumer group: pending entries (one line per lane: the requests
    stream has two, as Kafka has a topic per lane) and entries in flight. Entries are handed
    out priority first, the relaxed lane getting its guaranteed share (``LaneTurns``)."""

    def __init__(
        self, name: str, decode: Callable[[bytes], Any], dead: list[DeadLetter], relaxed_every: int = 4
    ) -> None:
        self.name = name
        self.decode = decode
        self.dead = dead
        self.lines: dict[Lane, deque[_Entry]] = {lane: deque() for lane in Lane}
        self.in_flight: dict[int, _Entry] = {}
        self.wakeup = asyncio.Condition()
        self.turns = LaneTurns(relaxed_every)
        self._seq = itertools.count()

    @property
    def pending(self) -> list[_Entry]:
        """What waits, priority lane first."""
        return [entry for lane in Lane for entry in self.lines[lane]]

    async def put(self, raw: bytes, headers: dict[str, str] | None = None, lane: Lane = Lane.PRIORITY) -> None:
        async with self.wakeup:
            self.lines[lane].append(_Entry(next(self._seq), raw, headers or {}, lane=lane))
            self.wakeup.notify_all()

    def requeue(self, entry: _Entry) -> None:
        self.in_flight.pop(entry.seq, None)
        self.lines[entry.lane].appendleft(entry)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.wakeup:
            self.wakeup.notify_all()

    def _next(self) -> _Entry | None:
        lines = self.lines
        lane = self.turns.next(bool(lines[Lane.PRIORITY]), bool(lines[Lane.RELAXED]))
        return None if lane is None else lines[lane].popleft()

    async def take(self, limit: int, timeout: float) -> list[MemoryDelivery[Any]]:
        out: list[MemoryDelivery[Any]] = []
        async with self.wakeup:
            if not any(self.lines.values()):
                try:
                    await asyncio.wait_for(self.wakeup.wait_for(lambda: any(self.lines.values())), timeout)
                except TimeoutError:
                    return out
            while len(out) < limit and (entry := self._next()) is not None:
                try:
                    message = self.decode(entry.raw)
                except UndecodableMessage as exc:
                    log.warning("set aside an undecodable message on %s: %s", self.name, exc.reason)
                    self.dead.append(DeadLetter(self.name, entry.raw, exc.reason))
                    continue
                entry.deliveries += 1
                self.in_flight[entry.seq] = entry
                out.append(MemoryDelivery(message, entry, self, attempt=entry.deliveries))
        return out

    def owed(self, lane: Lane) -> int:
        """Entries of ``lane`` waiting or in flight."""
        return len(self.lines[lane]) + sum(1 for e in self.in_flight.values() if e.lane == lane)

    def abandon_in_flight(self) -> int:
        """What the broker does when a consumer dies: everything unacked is owed again."""
        entries = sorted(self.in_flight.values(), key=lambda e: e.seq)
        self.in_flight.clear()
        for entry in reversed(entries):
            self.lines[entry.lane].appendleft(entry)
        return len(entries)


def _lane_of(raw: bytes) -> Lane:
    """The lane of a saved request (a job or a cancellation; priority if it cannot be read)."""
    try:
        return decode_request(raw).lane
    except UndecodableMessage:
        return Lane.PRIORITY


class MemoryJobQueue:
    """asyncio queue of jobs and events within one process (``--role all``).

    With a ``state_file``, what is still owed when the process stops (queued jobs, jobs in
    flight, undelivered results) is written there and queued again on the next start, so a
    restart of the embedded service loses no accepted prompt.
    """

    def __init__(self, state_file: str | Path | None = None, relaxed_every: int = 4) -> None:
        self.state_file = Path(state_file) if state_file else None
        self.dead_letters: list[DeadLetter] = []
        # ``relaxed_every``: at least one in this many jobs handed out is relaxed while relaxed
        # jobs wait (LANES_RELAXED_EVERY).
        self.jobs = _Stream("requests", decode_request, self.dead_letters, relaxed_every)
        self.events = _Stream("results", decode_event, self.dead_letters)
        self._ready = False

    async def start(self) -> None:
        if self.state_file and self.state_file.is_file():
            saved = json.loads(self.state_file.read_text())
            for stream in (self.jobs, self.events):
                for raw in saved.get(stream.name, []):
                    data = base64.b64decode(raw)
                    await stream.put(data, lane=_lane_of(data) if stream is self.jobs else Lane.PRIORITY)
            self.state_file.unlink()
            log.info(
                "restored %d job(s) and %d event(s) from %s",
                len(self.jobs.pending),
                len(self.events.pending),
                self.state_file,
            )
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        self.jobs.abandon_in_flight()
        self.events.abandon_in_flight()
        if self.state_file and (self.jobs.pending or self.events.pending):
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            saved = {s.name: [base64.b64encode(e.raw).decode() for e in s.pending] for s in (self.jobs, self.events)}
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(saved))
            tmp.replace(self.state_file)
            log.info(
                "saved %d job(s) and %d event(s) to %s",
                len(self.jobs.pending),
                len(self.events.pending),
                self.state_file,
            )

    def delivers_events_of(self, chat_id: int) -> bool:
        return True  # one process gets every event

    def is_ready(self) -> bool:
        return self._ready

    @staticmethod
    def _context() -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    async def publish_job(self, job: Job) -> None:
        await self.jobs.put(encode_job(job), self._context(), lane=job.lane)

    async def publish_cancel(self, cancel: Cancel) -> None:
        # In the job's lane, behind the job (as on Kafka, where the lane is a topic).
        await self.jobs.put(encode_cancel(cancel), self._context(), lane=cancel.lane)

    async def receive_jobs(self, max_jobs: int, timeout: float) -> list[MemoryDelivery[Job | Cancel]]:
        return await self.jobs.take(max_jobs, timeout)

    async def publish_event(self, event: Event) -> None:
        await self.events.put(encode_event(event), self._context())

    async def receive_events(self, max_events: int, timeout: float) -> list[MemoryDelivery[Event]]:
        return await self.events.take(max_events, timeout)

    async def backlog(self) -> int:
        """Jobs owed (a pending cancellation counts too: it is work the worker has to do)."""
        return len(self.jobs.pending) + len(self.jobs.in_flight)

    async def backlogs(self) -> dict[Lane, int]:
        """Jobs owed in each lane."""
        return {lane: self.jobs.owed(lane) for lane in Lane}

    # Test and operations hooks -------------------------------------------------------------
    async def publish_raw_job(self, raw: bytes, lane: Lane = Lane.PRIORITY) -> None:
        await self.jobs.put(raw, lane=lane)

    async def publish_raw_event(self, raw: bytes) -> None:
        await self.events.put(raw)

    def abandon_consumers(self) -> int:
        return self.jobs.abandon_in_flight() + self.events.abandon_in_flight()
