"""The no-op versions of the telemetry ports (``domain.ports.Metrics`` and ``Tracer``), which keep
the use cases free of any telemetry library; the OpenTelemetry adapter implements the real ones."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from domain.models import Result
from domain.ports import Carrier


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

    def lane_wait(self, lane: str, seconds: float) -> None:
        pass

    def job_lane(self, lane: str, reason: str) -> None:
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

    def prompt_refused(self, category: str, where: str) -> None:
        pass

    def image_checked(self, seconds: float, flagged: Sequence[str], action: str) -> None:
        pass

    def forged_event(self, kind: str, reason: str) -> None:
        pass

    def job_accepted(self) -> None:
        pass

    def first_reply(self, seconds: float) -> None:
        pass

    def dead_lettered(self, topic: str) -> None:
        pass

    def generator_info(self, info: Mapping[str, str]) -> None:
        pass

    def worker_speed(self, seconds_per_image: Mapping[str, float], sources: Mapping[str, str]) -> None:
        pass

    def telegram_api_error(self, method: str, code: str) -> None:
        pass

    def telegram_up(self, mode: str, up: bool) -> None:
        pass

    def stars_received(self, stars: int) -> None:
        pass

    def credits_moved(self, kind: str, credits: int) -> None:
        pass

    def model_loading(self, loading: bool, downloaded_bytes: int = 0) -> None:
        pass


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
