"""OpenTelemetry metrics: the service's own numbers plus process and system CPU and network
packets per second. Exported in Prometheus format on the app's ``/metrics`` and, when an OTLP
endpoint is set, pushed over OTLP/HTTP as well."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence

import psutil
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from domain.models import Result

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
LAG_MAX_AGE_S = 60.0  # the backlog is measured every few seconds; older than this it is unknown


class _Rates:
    """CPU and network readings for the observable gauges (psutil)."""

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.process.cpu_percent(None)
        psutil.cpu_percent(None)
        self.cores = psutil.cpu_count() or 1
        self._net = self._packets()
        self._net_at = time.monotonic()

    @staticmethod
    def _packets() -> int:
        counters = psutil.net_io_counters()
        return counters.packets_sent + counters.packets_recv if counters else 0

    def process_cpu(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.process.cpu_percent(None) / 100.0 / self.cores)

    def system_cpu(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(psutil.cpu_percent(None) / 100.0)

    def packets_per_second(self, options: CallbackOptions) -> Iterable[Observation]:
        now, packets = time.monotonic(), self._packets()
        elapsed = max(1e-6, now - self._net_at)
        rate = max(0, packets - self._net) / elapsed
        self._net, self._net_at = packets, now
        yield Observation(rate)


class OtelMetrics:
    """Implements the domain's ``Metrics`` port with OpenTelemetry instruments."""

    def __init__(
        self,
        *,
        service_name: str = "prompt2pic",
        role: str = "all",
        extra_readers: Iterable[MetricReader] = (),
        otlp_endpoint: str = "",
        system_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry()
        readers: list[MetricReader] = [PrometheusMetricReader(registry=self.registry), *extra_readers]
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(
                PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/metrics"))
            )
        views = [
            View(instrument_name="p2p.batch.size", aggregation=ExplicitBucketHistogramAggregation(BATCH_BUCKETS)),
            *(
                View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(SECONDS_BUCKETS))
                for name in (
                    "p2p.generation.duration",
                    "p2p.queue.wait",
                    "p2p.end_to_end",
                    "p2p.translation.duration",
                    "p2p.safety.image_check.duration",
                )
            ),
        ]
        self.provider = MeterProvider(
            metric_readers=readers,
            views=views,
            resource=Resource.create({"service.name": service_name, "service.role": role}),
        )
        meter = self.provider.get_meter("prompt2pic")
        self.generation = meter.create_histogram(
            "p2p.generation.duration", unit="s", description="generator call duration per batch"
        )
        self.queue_wait = meter.create_histogram(
            "p2p.queue.wait", unit="s", description="time from acceptance to the start of work"
        )
        self.end_to_end = meter.create_histogram(
            "p2p.end_to_end", unit="s", description="time from acceptance to delivery to the user"
        )
        self.batch_size = meter.create_histogram(
            "p2p.batch.size", unit="{image}", description="images per generator call"
        )
        self.jobs = meter.create_counter(
            "p2p.jobs", description="finished jobs by outcome (done, failed, cancelled) and profile"
        )
        self.selected = meter.create_counter(
            "p2p.quality.profile.selected", description="quality profile chosen per job, with the reason"
        )
        self.storage_errors = meter.create_counter("p2p.storage.errors", description="failed storage attempts")
        self.telegram_errors = meter.create_counter("p2p.telegram.errors", description="failed Bot API calls by kind")
        self.prompts = meter.create_counter(
            "p2p.prompts",
            description="prompts read by the model, by detected language and outcome (translated, none, failed, off)",
        )
        self.translation = meter.create_histogram(
            "p2p.translation.duration", unit="s", description="translator call duration (all texts of a batch)"
        )
        self.translated_texts = meter.create_counter(
            "p2p.translation.texts", description="texts sent to the translator (cache misses)"
        )
        self.translation_errors = meter.create_counter(
            "p2p.translation.errors", description="failed translator calls by kind"
        )
        self.safety_check = meter.create_histogram(
            "p2p.safety.image_check.duration", unit="s", description="image check time per picture"
        )
        self.safety_flagged = meter.create_counter(
            "p2p.safety.images.flagged", description="pictures the image check flagged, by category and action"
        )
        self.safety_checked = meter.create_counter(
            "p2p.safety.images.checked", description="pictures a detector looked at (none without one)"
        )
        self.safety_refused = meter.create_counter(
            "p2p.safety.prompts.refused", description="prompts the filter refused, by category and where"
        )
        self.forged_events = meter.create_counter(
            "p2p.forged_events",
            description="events on the results stream dropped for not matching their job's record, by kind and reason",
        )
        self.in_flight = meter.create_up_down_counter("p2p.jobs.in_flight", description="jobs being worked on")
        self.api_errors = meter.create_counter(
            "p2p.telegram.api.errors", description="Bot API calls refused, by method and error code"
        )
        # The backlog is group-wide: each process that measures it reports the same figure
        # (dashboards and alerts take max(), never sum()). A value older than LAG_MAX_AGE_S (the
        # broker unreachable, the measuring loop stopped) is not reported rather than reported stale.
        self._lag: tuple[float, int] | None = None
        meter.create_observable_gauge(
            "p2p.consumer.lag",
            callbacks=[self._observe_lag],
            unit="{job}",
            description="jobs queued and not finished, group-wide (the same in every process: use max())",
        )
        self._telegram_up: dict[str, int] = {}
        meter.create_observable_gauge(
            "p2p.telegram.polling.up",
            callbacks=[lambda options: self._observe_up("polling")],
            description="1 while getUpdates works (polling mode), else 0",
        )
        meter.create_observable_gauge(
            "p2p.telegram.webhook.up",
            callbacks=[lambda options: self._observe_up("webhook")],
            description="1 while Telegram delivers to our webhook (webhook mode), else 0",
        )
        self._model: tuple[int, int] | None = None  # (loading, bytes downloaded); None: no model here
        meter.create_observable_gauge(
            "p2p.model.loading",
            callbacks=[lambda options: self._observe_model(0)],
            description="1 while the worker loads or downloads its model (not ready), else 0",
        )
        meter.create_observable_gauge(
            "p2p.model.downloaded",
            callbacks=[lambda options: self._observe_model(1)],
            unit="By",
            description="bytes of the model downloaded so far by this start",
        )
        if system_metrics:
            rates = _Rates()
            meter.create_observable_gauge(
                "p2p.process.cpu.utilization",
                callbacks=[rates.process_cpu],
                unit="1",
                description="this process's CPU use, share of all cores",
            )
            meter.create_observable_gauge(
                "p2p.system.cpu.utilization",
                callbacks=[rates.system_cpu],
                unit="1",
                description="the machine's CPU use",
            )
            meter.create_observable_gauge(
                "p2p.network.packets_per_second",
                callbacks=[rates.packets_per_second],
                unit="{packet}/s",
                description="network packets sent and received per second",
            )

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._lag is not None and time.monotonic() - self._lag[0] <= LAG_MAX_AGE_S:
            yield Observation(self._lag[1])

    def _observe_up(self, mode: str) -> Iterable[Observation]:
        if mode in self._telegram_up:
            yield Observation(self._telegram_up[mode])

    def _observe_model(self, which: int) -> Iterable[Observation]:
        if self._model is not None:
            yield Observation(self._model[which])

    # --- the Metrics port -----------------------------------------------------------------
    def profile_selected(self, profile: str, reason: str) -> None:
        self.selected.add(1, {"profile": profile, "reason": reason})

    def batch_generated(self, profile: str, batch_size: int, seconds: float) -> None:
        self.generation.record(seconds, {"profile": profile, "batch_size": batch_size})
        self.batch_size.record(batch_size, {"profile": profile})

    def job_finished(self, result: Result, batch_size: int) -> None:
        attrs = {"outcome": result.outcome, "profile": result.profile or "none"}
        if result.error_code:
            attrs["error"] = result.error_code.value
        self.jobs.add(1, attrs)
        if result.timings.queue_wait_s:
            self.queue_wait.record(result.timings.queue_wait_s, {"profile": result.profile or "none"})

    def storage_error(self) -> None:
        self.storage_errors.add(1)

    def jobs_in_flight(self, delta: int) -> None:
        self.in_flight.add(delta)

    def consumer_lag(self, jobs: int) -> None:
        self._lag = (time.monotonic(), jobs)

    def result_delivered(self, result: Result, end_to_end_s: float) -> None:
        self.end_to_end.record(end_to_end_s, {"outcome": result.outcome, "profile": result.profile or "none"})

    def delivery_error(self, kind: str) -> None:
        self.telegram_errors.add(1, {"kind": kind})

    def prompt_understood(self, language: str, outcome: str) -> None:
        self.prompts.add(1, {"language": language, "outcome": outcome})

    def translation_batch(self, texts: int, seconds: float) -> None:
        self.translation.record(seconds)
        self.translated_texts.add(texts)

    def translation_failed(self, kind: str) -> None:
        self.translation_errors.add(1, {"kind": kind})

    def prompt_refused(self, category: str, where: str) -> None:
        self.safety_refused.add(1, {"category": category or "none", "where": where})

    def image_checked(self, seconds: float, flagged: Sequence[str], action: str) -> None:
        self.safety_check.record(seconds)
        self.safety_checked.add(1, {"flagged": bool(flagged)})
        for category in flagged:
            self.safety_flagged.add(1, {"category": category, "action": action})

    def forged_event(self, kind: str, reason: str) -> None:
        self.forged_events.add(1, {"kind": kind, "reason": reason})

    def telegram_api_error(self, method: str, code: str) -> None:
        self.api_errors.add(1, {"method": method, "code": code})

    def telegram_up(self, mode: str, up: bool) -> None:
        self._telegram_up = {mode: int(up)}

    def model_loading(self, loading: bool, downloaded_bytes: int = 0) -> None:
        self._model = (int(loading), downloaded_bytes)

    # --- export ----------------------------------------------------------------------------
    def prometheus(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def shutdown(self) -> None:
        self.provider.shutdown()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.shutdown()
