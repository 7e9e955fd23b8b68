"""OpenTelemetry metrics: the service's own numbers plus process and system CPU and network
packets per second. Exported in Prometheus format on the app's ``/metrics`` and, when an OTLP
endpoint is set, pushed over OTLP/HTTP as well."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence

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
        answer_limit_s: float = 120.0,
    ) -> None:
        """``answer_limit_s``: the answer-in-time objective's limit (twice ``TARGET_WAIT_S``), by
        which ``p2p_answers_total`` tells answers in time from late ones."""
        self.answer_limit_s = answer_limit_s
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
                    "p2p.lane.wait",
                    "p2p.end_to_end",
                    "p2p.translation.duration",
                    "p2p.safety.image_check.duration",
                    "p2p.first_reply",
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
        self.lane_waits = meter.create_histogram(
            "p2p.lane.wait", unit="s", description="time from acceptance to the start of work, per lane"
        )
        self.lane_jobs = meter.create_counter("p2p.lane.jobs", description="jobs admitted, per lane and reason")
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
        self.accepted = meter.create_counter(
            "p2p.jobs.accepted", description="prompts the bot accepted (recorded; each gets a picture or an error)"
        )
        self.first_reply_time = meter.create_histogram(
            "p2p.first_reply",
            unit="s",
            description="time from admitting a prompt to the bot's first reply (its status)",
        )
        self.answers = meter.create_counter(
            "p2p.answers",
            description="results delivered to the user (picture or error), by whether within the answer-in-time limit",
        )
        self.dead_letters = meter.create_counter(
            "p2p.dead_letters", description="messages set aside on the dead-letter topic, by source topic"
        )
        # Counters start at 0 (every label value the objectives read), so that rate() and
        # increase() count their first increments too: OpenTelemetry creates a series at its
        # first add, and a series that appears at 1 loses that 1 (rate() extrapolates from its
        # first sample, never before it). The alerts and the objectives need them exact.
        self.accepted.add(0)
        self.storage_errors.add(0)
        for in_time in ("true", "false"):
            self.answers.add(0, {"in_time": in_time})
        # Telegram Stars (PAYMENTS=stars): what came in, and every move of the credits it bought.
        self.stars = meter.create_counter(
            "p2p.payments.stars", unit="{star}", description="Telegram Stars received (payments credited)"
        )
        self.credits = meter.create_counter(
            "p2p.payments.credits",
            unit="{credit}",
            description="credits moved, by kind: purchase (granted), spend, give_back, refund (taken back)",
        )
        self.stars.add(0)
        for kind in ("purchase", "spend", "give_back", "refund"):
            self.credits.add(0, {"kind": kind})
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
        self._generator_info: dict[str, str] = {}
        meter.create_observable_gauge(
            "p2p.generator.info",
            callbacks=[self._observe_generator],
            unit="1",
            description="1, labelled with the generator's device, dtype (and why), backend, machine and model",
        )
        self._speed: dict[str, float] = {}
        self._speed_sources: dict[str, str] = {}
        meter.create_observable_gauge(
            "p2p.worker.seconds_per_image",  # no unit: it would add "_seconds" to the Prometheus name
            callbacks=[self._observe_speed],
            description="this worker's own seconds per image by profile, timed at start (or from its cache)",
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

    def _observe_generator(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._generator_info:
            yield Observation(1, self._generator_info)

    def _observe_speed(self, options: CallbackOptions) -> Iterable[Observation]:
        for profile, seconds in self._speed.items():
            yield Observation(seconds, {"profile": profile, "source": self._speed_sources.get(profile, "")})

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

    def lane_wait(self, lane: str, seconds: float) -> None:
        self.lane_waits.record(seconds, {"lane": lane})

    def job_lane(self, lane: str, reason: str) -> None:
        self.lane_jobs.add(1, {"lane": lane, "reason": reason})

    def storage_error(self) -> None:
        self.storage_errors.add(1)

    def jobs_in_flight(self, delta: int) -> None:
        self.in_flight.add(delta)

    def consumer_lag(self, jobs: int) -> None:
        self._lag = (time.monotonic(), jobs)

    def result_delivered(self, result: Result, end_to_end_s: float) -> None:
        self.end_to_end.record(end_to_end_s, {"outcome": result.outcome, "profile": result.profile or "none"})
        # The answer-in-time objective counts from these, not from the histogram above: its
        # series appear only at the first delivery of each outcome and profile, so rate() over
        # them misses the deliveries before their first scrape.
        self.answers.add(1, {"in_time": "true" if end_to_end_s <= self.answer_limit_s else "false"})

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

    def job_accepted(self) -> None:
        self.accepted.add(1)

    def first_reply(self, seconds: float) -> None:
        self.first_reply_time.record(seconds)

    def dead_lettered(self, topic: str) -> None:
        # Not by reason: the reasons carry the decoder's message (free text, unbounded labels).
        self.dead_letters.add(1, {"topic": topic})

    def generator_info(self, info: Mapping[str, str]) -> None:
        keys = ("device", "dtype", "dtype_reason", "backend", "backend_reason", "machine", "model")
        self._generator_info = {key: str(info.get(key, "")) for key in keys}

    def worker_speed(self, seconds_per_image: Mapping[str, float], sources: Mapping[str, str]) -> None:
        self._speed = dict(seconds_per_image)
        self._speed_sources = dict(sources)

    def telegram_api_error(self, method: str, code: str) -> None:
        self.api_errors.add(1, {"method": method, "code": code})

    def stars_received(self, stars: int) -> None:
        self.stars.add(stars)

    def credits_moved(self, kind: str, credits: int) -> None:
        self.credits.add(credits, {"kind": kind})

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
