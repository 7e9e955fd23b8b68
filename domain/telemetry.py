"""Ports for what the use cases report: metrics and trace spans. The OpenTelemetry adapter
implements them; the no-op versions keep the use cases free of any telemetry library."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from domain.models import Result

Carrier = Mapping[str, str]
"""Trace context as text headers (W3C traceparent), carried with a message on the queue."""


class Metrics(Protocol):
    def profile_selected(self, profile: str, reason: str) -> None: ...

    def batch_generated(self, profile: str, batch_size: int, seconds: float) -> None: ...

    def job_finished(self, result: Result, batch_size: int) -> None: ...

    def storage_error(self) -> None: ...

    def jobs_in_flight(self, delta: int) -> None: ...

    def consumer_lag(self, jobs: int) -> None: ...

    def result_delivered(self, result: Result, end_to_end_s: float) -> None: ...

    def delivery_error(self, kind: str) -> None: ...

    def prompt_understood(self, language: str, outcome: str) -> None:
        """One prompt before generation: its detected language and what became of it
        (translated, none, failed, off)."""
        ...

    def translation_batch(self, texts: int, seconds: float) -> None: ...

    def translation_failed(self, kind: str) -> None: ...


class NoMetrics:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def profile_selected(self, profile: str, reason: str) -> None:
        pass

    def batch_generated(self, profile: str, batch_size: int, seconds: float) -> None:
        pass

    def job_finished(self, result: Result, batch_size: int) -> None:
        pass

    def storage_error(self) -> None:
        pass

    def jobs_in_flight(self, delta: int) -> None:
        pass

    def consumer_lag(self, jobs: int) -> None:
        pass

    def result_delivered(self, result: Result, end_to_end_s: float) -> None:
        pass

    def delivery_error(self, kind: str) -> None:
        pass

    def prompt_understood(self, language: str, outcome: str) -> None:
        pass

    def translation_batch(self, texts: int, seconds: float) -> None:
        pass

    def translation_failed(self, kind: str) -> None:
        pass


class Tracer(Protocol):
    def span(
        self,
        name: str,
        *,
        carrier: Carrier | None = None,
        links: Sequence[Carrier] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        """A span, child of the trace in ``carrier`` when given, current while the block runs
        (so messages published inside it carry its context)."""
        ...


class NoTracer:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        carrier: Carrier | None = None,
        links: Sequence[Carrier] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[None]:
        yield


def carrier_of(delivery: object) -> Carrier | None:
    """The trace context a queue adapter attached to a delivery, if any."""
    return getattr(delivery, "carrier", None)
