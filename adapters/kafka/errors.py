"""How the Kafka adapter tells a passing failure (broker away, leader moving) from a real one,
and how it names an error in a log line."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError

_TRANSIENT_NAMES = (
    "KafkaConnectionError",
    "KafkaTimeoutError",
    "NodeNotReadyError",
    "NoBrokersAvailable",
    "RequestTimedOutError",
    "NotLeaderForPartitionError",
    "LeaderNotAvailableError",
    "GroupCoordinatorNotAvailableError",
    "NotCoordinatorForGroupError",
    "CoordinatorLoadInProgressError",
    "UnknownTopicOrPartitionError",
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, ConnectionError, OSError)):
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in _TRANSIENT_NAMES
    return False


def describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name
