"""Lanes on Kafka: a topic per lane, read by one consumer of the worker group.

The priority lane is the requests topic itself; the relaxed lane is the requests topic with
``.relaxed`` after it (``relaxed_topic``), so a backlog of relaxed jobs sits in partitions of its
own and a priority job never waits behind it in a partition. One consumer subscribes to both
topics (one group, one commit loop, the same delivery counts in the commit metadata), keeps
what it read in one line per lane (``ReadyLines``) and hands out priority first, with the
relaxed lane's guaranteed share (``domain.lanes.LaneTurns``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping

from adapters.kafka.offsets import Record
from domain.lanes import LaneTurns
from domain.models import Lane

RELAXED_SUFFIX = ".relaxed"


def relaxed_topic(requests_topic: str) -> str:
    """The relaxed lane's topic beside ``requests_topic``."""
    return requests_topic + RELAXED_SUFFIX


def lane_topics(requests_topic: str) -> dict[Lane, str]:
    """Each lane's topic, priority first."""
    return {Lane.PRIORITY: requests_topic, Lane.RELAXED: relaxed_topic(requests_topic)}


class ReadyLines:
    """Records read, decoded and waiting to be handed out, one line per lane (a consumer of one
    topic has one line: its topic's lane is priority)."""

    def __init__(self, topics: Mapping[Lane, str], relaxed_every: int = 4) -> None:
        self.lane_of_topic = {topic: lane for lane, topic in topics.items()}
        self.lines: dict[Lane, deque[Record]] = {lane: deque() for lane in Lane}
        self.turns = LaneTurns(relaxed_every)

    def lane(self, topic: str) -> Lane:
        return self.lane_of_topic.get(topic, Lane.PRIORITY)

    def _line(self, record: Record) -> deque[Record]:
        return self.lines[self.lane(record.part.tp.topic)]

    def append(self, record: Record) -> None:
        self._line(record).append(record)

    def appendleft(self, record: Record) -> None:
        """First in its line (a released message goes out again soon, as in the in-memory queue)."""
        self._line(record).appendleft(record)

    def count(self, lane: Lane) -> int:
        return len(self.lines[lane])

    def __len__(self) -> int:
        return sum(len(line) for line in self.lines.values())

    def __iter__(self) -> Iterator[Record]:
        for line in self.lines.values():
            yield from line

    def take(self, usable: Callable[[Record], bool]) -> Record | None:
        """The next record to hand out: priority first, the relaxed lane's share kept. Records
        no longer ``usable`` (their partition revoked, already handed out) are dropped first, so
        they take no turn."""
        for line in self.lines.values():
            while line and not usable(line[0]):
                line.popleft()
        lines = self.lines
        lane = self.turns.next(bool(lines[Lane.PRIORITY]), bool(lines[Lane.RELAXED]))
        return None if lane is None else lines[lane].popleft()

    def keep(self, alive: Callable[[Record], bool]) -> None:
        for lane, line in self.lines.items():
            self.lines[lane] = deque(r for r in line if alive(r))

    def clear(self) -> None:
        for line in self.lines.values():
            line.clear()
