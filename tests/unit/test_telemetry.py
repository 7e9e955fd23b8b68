"""Metrics and traces of a job, read back through the OpenTelemetry SDK's in-memory reader and
exporter; and the Prometheus text on the app's /metrics."""

from __future__ import annotations

import aiohttp
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.embedded.delivery_log import MemoryDeliveryLog
from adapters.embedded.generator import FakeGenerator
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from adapters.http.server import HttpEndpoint
from adapters.otel.metrics import OtelMetrics
from adapters.otel.tracing import OtelTracer
from domain.models import ErrorCode, Quality, Result
from domain.use_cases import DeliverResults, ProcessJobs, SubmitPrompt


class Notifier:
    def __init__(self) -> None:
        self.delivered = []

    async def progress(self, event):
        pass

    async def deliver(self, result, sent):
        self.delivered.append(result)
        await sent()


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


async def run_two_jobs(tmp_path, metrics, tracer):
    queue = MemoryJobQueue()
    storage = LocalFolderStorage(tmp_path)
    await queue.start()
    await storage.start()
    submit = SubmitPrompt(queue, default_width=256, default_height=256, tracer=tracer)
    jobs = [await submit(user_id=u, chat_id=u, prompt="a fox", quality=Quality.FAST) for u in (1, 2)]
    worker = ProcessJobs(queue, FakeGenerator(), storage, max_batch=4, metrics=metrics, tracer=tracer)
    assert await worker.run_once() == 2
    notifier = Notifier()
    deliver = DeliverResults(queue, notifier, MemoryDeliveryLog(), metrics=metrics, tracer=tracer)
    for d in await queue.receive_events(100, 0.2):
        await deliver.handle(d)
    assert len(notifier.delivered) == 2
    return jobs


async def test_a_job_leaves_its_numbers(tmp_path):
    reader = InMemoryMetricReader()
    metrics = OtelMetrics(extra_readers=[reader])
    await run_two_jobs(tmp_path, metrics, OtelTracer())
    got = points(reader)
    [generation] = got["p2p.generation.duration"]
    assert generation.count == 1 and generation.sum > 0
    assert dict(generation.attributes) == {"profile": "fast", "batch_size": 2}
    [batch] = got["p2p.batch.size"]
    assert batch.sum == 2
    jobs = {tuple(sorted(p.attributes.items())): p.value for p in got["p2p.jobs"]}
    assert jobs == {(("outcome", "done"), ("profile", "fast")): 2}
    assert sum(p.count for p in got["p2p.queue.wait"]) == 2
    assert sum(p.count for p in got["p2p.end_to_end"]) == 2
    assert all(p.sum > 0 for p in got["p2p.end_to_end"])
    [selected] = got["p2p.quality.profile.selected"]
    assert selected.value == 2 and dict(selected.attributes) == {"profile": "fast", "reason": "requested"}
    assert [p.value for p in got["p2p.jobs.in_flight"]] == [0]
    assert [p.value for p in got["p2p.consumer.lag"]] == [2]  # two jobs were waiting when planned
    for name in ("p2p.process.cpu.utilization", "p2p.system.cpu.utilization", "p2p.network.packets_per_second"):
        [point] = got[name]
        assert point.value >= 0
    assert 0 <= got["p2p.system.cpu.utilization"][0].value <= 1


async def test_one_trace_per_job_from_acceptance_to_delivery(tmp_path):
    exporter = InMemorySpanExporter()
    tracer = OtelTracer(exporter=exporter)
    jobs = await run_two_jobs(tmp_path, OtelMetrics(system_metrics=False), tracer)
    spans = exporter.get_finished_spans()
    accepts = {s.attributes["job.id"]: s for s in spans if s.name == "job.accept"}
    assert set(accepts) == {j.job_id for j in jobs}
    for job in jobs:
        trace_id = accepts[job.job_id].context.trace_id
        names = {s.name for s in spans if s.context.trace_id == trace_id}
        assert {"job.accept", "job.store_and_report", "job.deliver"} <= names
    [generate] = [s for s in spans if s.name == "generate"]
    assert {link.context.trace_id for link in generate.links} == {s.context.trace_id for s in accepts.values()}


async def test_metrics_endpoint_serves_prometheus_text(tmp_path):
    metrics = OtelMetrics()
    await run_two_jobs(tmp_path, metrics, OtelTracer())
    http = HttpEndpoint("127.0.0.1", 0, metrics=metrics.prometheus)
    await http.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{http.port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
    finally:
        await http.stop()
    for name in (
        "p2p_generation_duration_seconds_bucket",
        "p2p_queue_wait_seconds_count",
        "p2p_end_to_end_seconds_sum",
        "p2p_batch_size_bucket",
        "p2p_jobs_total",
        "p2p_consumer_lag",
        "p2p_jobs_in_flight",
        "p2p_quality_profile_selected_total",
        "p2p_process_cpu_utilization",
        "p2p_system_cpu_utilization",
        "p2p_network_packets_per_second",
    ):
        assert name in text, name


# --------------------------------------------------------------------------- metrics that say what happened


def counts(reader: InMemoryMetricReader, name: str) -> dict[tuple, float]:
    return {tuple(sorted(p.attributes.items())): p.value for p in points(reader).get(name, [])}


async def worker_rig(tmp_path, **kw):
    reader = InMemoryMetricReader()
    metrics = OtelMetrics(extra_readers=[reader], system_metrics=False)
    queue = MemoryJobQueue()
    storage = LocalFolderStorage(tmp_path)
    await queue.start()
    await storage.start()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    worker = ProcessJobs(queue, FakeGenerator(), storage, max_batch=4, poll_timeout_s=0.05, metrics=metrics, **kw)
    return reader, queue, submit, worker


async def test_the_lag_is_zero_once_nothing_waits(tmp_path):
    reader, queue, submit, worker = await worker_rig(tmp_path)
    for u in (1, 2):
        await submit(user_id=u, chat_id=u, prompt="a fox")
    assert await worker.run_once() == 2
    assert [p.value for p in points(reader)["p2p.consumer.lag"]] == [2]  # as planned
    assert await queue.backlog() == 0
    assert await worker.run_once() == 0  # an idle poll: the queue is drained
    assert [p.value for p in points(reader)["p2p.consumer.lag"]] == [0]
    await submit(user_id=3, chat_id=3, prompt="a fox")
    assert await worker.run_once() == 1
    assert [p.value for p in points(reader)["p2p.consumer.lag"]] == [1]  # one waited again


async def test_no_picture_counts_as_checked_without_a_detector(tmp_path):
    from adapters.embedded.image_check import NoImageCheck
    from domain.safety import CLEAN
    from domain.safety_gate import SafetyGate

    class Detector(NoImageCheck):
        """A detector double that looks (and passes everything)."""

        name = "double"
        inspects = True

        def __init__(self) -> None:
            self.seen = 0

        async def check(self, pngs):
            self.seen += len(pngs)
            return [CLEAN for _ in pngs]

    reader, _, submit, worker = await worker_rig(tmp_path, safety=SafetyGate(image_check=NoImageCheck()))
    worker.safety.metrics = worker.metrics
    await submit(user_id=1, chat_id=1, prompt="a fox")
    assert await worker.run_once() == 1
    assert counts(reader, "p2p.safety.images.checked") == {}  # the stand-in looked at nothing
    assert "p2p.safety.image_check.duration" not in points(reader)

    detector = Detector()
    reader, _, submit, worker = await worker_rig(tmp_path / "2", safety=SafetyGate(image_check=detector))
    worker.safety.metrics = worker.metrics
    await submit(user_id=1, chat_id=1, prompt="a fox")
    assert await worker.run_once() == 1
    assert detector.seen == 1
    assert counts(reader, "p2p.safety.images.checked") == {(("flagged", False),): 1}


async def test_a_users_cancel_counts_as_cancelled_not_failed(tmp_path):
    from domain.models import Cancel

    reader, queue, submit, worker = await worker_rig(tmp_path)
    withdrawn = await submit(user_id=1, chat_id=1, prompt="a fox")
    await queue.publish_cancel(Cancel(job_id=withdrawn.job_id, user_id=1))
    await submit(user_id=2, chat_id=2, prompt="a hare")
    await worker.run_once()
    jobs = counts(reader, "p2p.jobs")
    assert jobs[(("error", "cancelled"), ("outcome", "cancelled"), ("profile", "none"))] == 1
    assert jobs[(("outcome", "done"), ("profile", "quality"))] == 1
    assert not any(dict(k)["outcome"] == "failed" for k in jobs)


def answers(metrics: OtelMetrics) -> dict[str, float]:
    """p2p_answers_total by its in_time label, as Prometheus scrapes it."""
    from prometheus_client.parser import text_string_to_metric_families

    text = metrics.prometheus()[0].decode()
    return {
        sample.labels["in_time"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "p2p_answers_total"
    }


async def test_answers_are_counted_from_zero_in_time_or_late(tmp_path):
    """The answer-in-time objective's counter (docs/operations.md): both its series are exported at
    0 before any delivery, so that rate() counts the first answers too (a series that appears at
    its first increment loses it); a delivery within the limit counts in time, one after it late."""
    metrics = OtelMetrics(system_metrics=False, answer_limit_s=120)
    assert answers(metrics) == {"true": 0.0, "false": 0.0}
    jobs = await run_two_jobs(tmp_path, metrics, OtelTracer())  # delivered at once
    assert answers(metrics) == {"true": 2.0, "false": 0.0}
    late = Result.failure(jobs[0], ErrorCode.GENERATION_FAILED)
    metrics.result_delivered(late, 120.5)
    metrics.result_delivered(late, 120.0)  # the limit itself is in time
    assert answers(metrics) == {"true": 3.0, "false": 1.0}


async def test_stars_and_credits_are_counted_from_zero_by_kind(tmp_path):
    """Telegram Stars received and every move of the credits (granted, spent, given back, taken
    back by a refund), through the use cases on the memory store, read back as Prometheus scrapes
    them: every kind exported at 0 before the first move."""
    from prometheus_client.parser import text_string_to_metric_families

    from adapters.embedded.user_store import MemoryUserStore
    from domain.credits import StarPayment, parse_packs
    from domain.use_cases.credits import SellCredits, SpendCredits
    from domain.users import JobRecord, JobState, Outcome, UserLimits
    from tests.use_cases.test_credits import Platform

    metrics = OtelMetrics(system_metrics=False)

    def scraped() -> tuple[float, dict[str, float]]:
        stars, credits = 0.0, {}
        for family in text_string_to_metric_families(metrics.prometheus()[0].decode()):
            for sample in family.samples:
                if sample.name == "p2p_payments_stars_total":
                    stars = sample.value
                if sample.name == "p2p_payments_credits_total":
                    credits[sample.labels["kind"]] = sample.value
        return stars, credits

    assert scraped() == (0.0, {"purchase": 0.0, "spend": 0.0, "give_back": 0.0, "refund": 0.0})
    store = MemoryUserStore()
    paid = StarPayment("ch", 1, 15, 3, "credits:3:15", 1.0)
    sell = SellCredits(store, parse_packs("3:15"), Platform([paid]), metrics=metrics)
    spend = SpendCredits(store, metrics=metrics)
    assert await sell.credit(paid)
    assert not await sell.credit(paid)  # once
    submit = SubmitPrompt(MemoryJobQueue(), default_width=256, default_height=256)
    job = submit.prepare(user_id=1, chat_id=1, prompt="a fox")
    await store.admit([JobRecord.from_job(job)], UserLimits(), job.created_at)
    assert (await spend.spend_on(job)).paid_credit
    failed = await store.finish(job.job_id, Outcome(JobState.FAILED, 2.0, error_code="generation_failed"))
    assert await spend.give_back(failed)
    assert (await sell.refund("ch")).refunded.taken_back == 3
    assert scraped() == (15.0, {"purchase": 3.0, "spend": 1.0, "give_back": 1.0, "refund": 3.0})


async def test_lanes_leave_their_numbers(tmp_path):
    """Jobs per lane (admitted, with the reason) and each lane's wait to the start of its batch."""
    from adapters.embedded.user_store import MemoryUserStore
    from domain.lanes import LaneRules
    from domain.use_cases.admit import AdmitJobs

    class Quiet:  # the chat front: a status for everyone, nothing refused
        def album(self, job_ids):
            pass

        async def refused(self, job, error, reply_to):
            raise AssertionError(f"refused: {error}")

        async def open_status(self, job, position, reply_to):
            return None

    reader = InMemoryMetricReader()
    metrics = OtelMetrics(extra_readers=[reader])
    queue, store, storage = MemoryJobQueue(), MemoryUserStore(), LocalFolderStorage(tmp_path)
    for part in (queue, store, storage):
        await part.start()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    admit = AdmitJobs(submit, store, Quiet(), lanes=LaneRules(relaxed_after=2), metrics=metrics)
    for n in range(3):  # the third picture in the hour goes relaxed
        [job] = await admit([submit.prepare(user_id=1, chat_id=1, prompt=f"a fox {n}", quality=Quality.FAST)])
    assert job.lane == "relaxed"
    worker = ProcessJobs(queue, FakeGenerator(), storage, max_batch=4, metrics=metrics)
    assert await worker.run_once() == 3
    got = points(reader)
    admitted = {tuple(sorted(p.attributes.items())): p.value for p in got["p2p.lane.jobs"]}
    assert admitted == {
        (("lane", "priority"), ("reason", "light_use")): 2,
        (("lane", "relaxed"), ("reason", "heavy_use")): 1,
    }
    waits = {p.attributes["lane"]: p.count for p in got["p2p.lane.wait"]}
    assert waits == {"priority": 2, "relaxed": 1}
