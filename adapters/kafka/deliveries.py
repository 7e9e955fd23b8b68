"""A message of a Kafka topic as the ``Delivery`` port hands it to a consumer."""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from adapters.kafka.offsets import IN_FLIGHT, Record

T = TypeVar("T")
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


class Settler(Protocol):
    """What finishes a delivery: the consumer of the delivery's group."""

    def ack(self, delivery: KafkaDelivery[Any]) -> None: ...

    def release(self, delivery: KafkaDelivery[Any]) -> None: ...

    def hand_back(self, delivery: KafkaDelivery[Any]) -> None: ...


class KafkaDelivery(Generic[T]):
    """A message handed to a consumer. ``ack`` after the work is durable; ``release`` to have it
    delivered again. After its partition was revoked (rebalance) both are no-ops: the partition's
    new owner gets the message again. ``attempt`` counts the deliveries of the message by every
    consumer of the group, across crashes (1: the first); ``hand_back`` releases it on a planned
    stop without counting this delivery."""

    __slots__ = ("_message", "_settler", "attempt", "record", "settled")

    def __init__(self, message: T, record: Record, settler: Settler, attempt: int) -> None:
        self._message = message
        self._settler = settler
        self.record = record
        self.attempt = attempt
        self.settled = False

    @property
    def message(self) -> T:
        return self._message

    @property
    def topic(self) -> str:
        return self.record.part.tp.topic

    @property
    def partition(self) -> int:
        return self.record.part.tp.partition

    @property
    def offset(self) -> int:
        return self.record.offset

    @property
    def carrier(self) -> dict[str, str] | None:
        """The trace context the publisher attached (W3C headers), for the worker's spans."""
        found = {k: v.decode(errors="replace") for k, v in self.record.headers if k in TRACE_HEADERS and v}
        return found or None

    @property
    def stale(self) -> bool:
        """True when acking would do nothing: settled, or the partition was taken away."""
        r = self.record
        return self.settled or not r.part.alive or r.current is not self or r.state != IN_FLIGHT

    async def ack(self) -> None:
        self._settler.ack(self)

    async def release(self) -> None:
        self._settler.release(self)

    async def hand_back(self) -> None:
        self._settler.hand_back(self)

    def __repr__(self) -> str:
        return f"<KafkaDelivery {self.topic}[{self.partition}]@{self.offset} attempt={self.attempt}>"
