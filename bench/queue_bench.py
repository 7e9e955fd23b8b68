"""Benchmark of the queue path on the real Apache Kafka broker: throughput and latency from
publishing a job to the bot receiving its result, with a zero-time generator.

    python bench/queue_bench.py                      # starts a broker unless KAFKA_BOOTSTRAP_SERVERS is set
    python bench/queue_bench.py --jobs 5000 --rate 200 --workers 1

What runs (all in this one asyncio process, on the service's own classes):
  publisher --publish_job--> requests topic --> ProcessJobs (worker group) with a generator that
  returns a ready PNG at once and an in-memory storage --> results topic (progress "started",
  "uploading", then the result) --> DeliverResults (bot group) with a notifier that notes the time.

Two phases, each on fresh topics and groups:
  latency:    jobs published one by one at ``--rate`` jobs/s (open loop, below capacity): p50/p99
              of publish -> result delivered to the notifier;
  throughput: ``--jobs`` jobs published as fast as ``--concurrency`` concurrent publishers allow:
              jobs/s from the first publish to the last result, with the latencies under that load.

The worker is configured for latency (``batch_wait_s=0``: it does not wait to fill a batch); the
worker's batching policy is not part of the queue path. Kafka settings are the adapter's defaults
(acks=all, idempotence on, linger 0, manual commits) unless given on the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import logging
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from adapters.embedded.delivery_log import MemoryDeliveryLog  # noqa: E402
from adapters.kafka.queue import KafkaJobQueue  # noqa: E402
from config.factories import as_queue  # noqa: E402
from domain.models import GeneratedImage, GenerationRequest, Job, Quality, Result, StoredImage  # noqa: E402
from domain.ports import JobQueue  # noqa: E402
from domain.use_cases import DeliverResults, ProcessJobs  # noqa: E402


def _tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 80, 40)).save(buf, format="PNG")
    return buf.getvalue()


class ZeroGenerator:
    """Returns a ready-made picture at once: the benchmark measures the queue, not the model."""

    name = "zero"
    max_batch = 16
    png = _tiny_png()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def generate(self, requests: Sequence[GenerationRequest], progress=None) -> list[GeneratedImage]:
        return [GeneratedImage(png=self.png, width=r.width, height=r.height) for r in requests]


class MemoryStorage:
    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> StoredImage:
        self.items[key] = data
        return StoredImage(key=key, url=f"memory://{key}")

    async def get(self, key: str) -> bytes:
        return self.items[key]

    async def exists(self, key: str) -> bool:
        return key in self.items

    async def link(self, key: str) -> str:
        return f"memory://{key}"


class TimingNotifier:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.all_in = asyncio.Event()
        self.expected = 0

    async def progress(self, event: object) -> None:
        pass

    async def deliver(self, result: Result, sent: Callable[[], Awaitable[None]]) -> None:
        self.arrived.setdefault(result.job_id, time.perf_counter())
        if len(self.arrived) >= self.expected:
            self.all_in.set()
        await sent()

    async def settle(self, result: Result) -> None:
        pass  # no live status to finish here


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


async def serve_worker(bootstrap: str, options: dict, worker_id: str) -> None:
    """A worker process (``--worker-processes``): ProcessJobs with the zero-time generator until
    SIGTERM, as a worker runs in production (its own process)."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    queue = as_queue(KafkaJobQueue(bootstrap, client_id=worker_id, **options))
    await queue.start()
    worker = ProcessJobs(
        queue, ZeroGenerator(), MemoryStorage(), worker_id=worker_id, max_batch=16, batch_wait_s=0.0, poll_timeout_s=0.5
    )
    await worker.run(stop)
    await queue.stop()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """A benchmark leaves nothing behind on the broker (partitions cost the broker CPU even idle)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(topics)
    except Exception as exc:
        print(f"could not delete the benchmark's topics: {exc}", file=sys.stderr)
    finally:
        await admin.close()


async def run_phase(
    bootstrap: str,
    name: str,
    jobs: int,
    rate: float | None,
    concurrency: int,
    workers: int,
    queue_options: dict,
    worker_processes: int = 0,
    warmup: int = 500,
) -> dict:
    suffix = uuid.uuid4().hex[:8]
    options = {
        "requests_topic": f"bench-{suffix}.requests",
        "results_topic": f"bench-{suffix}.results",
        "dead_letter_topic": f"bench-{suffix}.dead-letters",
        "worker_group": f"bench-{suffix}.workers",
        "bot_group": f"bench-{suffix}.bots",
        **queue_options,
    }
    stop = asyncio.Event()
    queues: list[JobQueue] = []

    async def new_queue(client_id: str) -> JobQueue:
        q = as_queue(KafkaJobQueue(bootstrap, client_id=client_id, **options))
        await q.start()
        queues.append(q)
        return q

    publisher = await new_queue("bench-publisher")
    notifier = TimingNotifier()
    notifier.expected = jobs
    bot_queue = await new_queue("bench-bot")
    bot = DeliverResults(bot_queue, notifier, MemoryDeliveryLog(), batch=256, poll_timeout_s=0.5)
    tasks = [asyncio.create_task(bot.run(stop))]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve-worker", json.dumps([bootstrap, options, f"p{i}"])
        )
        for i in range(worker_processes)
    ]
    for i in range(workers):
        wq = await new_queue(f"bench-worker-{i}")
        worker = ProcessJobs(
            wq, ZeroGenerator(), MemoryStorage(), worker_id=f"w{i}", max_batch=16, batch_wait_s=0.0, poll_timeout_s=0.5
        )
        tasks.append(asyncio.create_task(worker.run(stop)))

    # Warm up: every consumer has joined its group and the path (and the broker's JIT) is hot
    # before timing starts.
    warm = [
        Job(user_id=1, chat_id=1, prompt="warm up", width=256, height=256, seed=i, quality=Quality.FAST)
        for i in range(max(1, warmup))
    ]
    notifier.expected = len(warm)
    pending_warm = iter(warm)

    async def warm_some() -> None:
        for job in pending_warm:
            await publisher.publish_job(job)

    await asyncio.gather(*(warm_some() for _ in range(16)))
    await asyncio.wait_for(notifier.all_in.wait(), 120)
    notifier.arrived.clear()
    notifier.all_in.clear()
    notifier.expected = jobs

    batch = [
        Job(
            user_id=10 + i % 50,
            chat_id=10 + i % 50,
            prompt=f"bench {i}",
            width=256,
            height=256,
            seed=i,
            quality=Quality.FAST,
        )
        for i in range(jobs)
    ]
    sent: dict[str, float] = {}
    cpu_started = time.process_time()
    started = time.perf_counter()
    if rate:
        interval = 1.0 / rate
        for i, job in enumerate(batch):
            delay = started + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[job.job_id] = time.perf_counter()
            await publisher.publish_job(job)
    else:
        pending = iter(batch)

        async def publish_some() -> None:
            for job in pending:
                sent[job.job_id] = time.perf_counter()
                await publisher.publish_job(job)

        await asyncio.gather(*(publish_some() for _ in range(concurrency)))
    published = time.perf_counter()
    await asyncio.wait_for(notifier.all_in.wait(), 300)
    finished = max(notifier.arrived.values())
    cpu_s = time.process_time() - cpu_started
    latencies = [(notifier.arrived[j] - sent[j]) * 1000 for j in sent]

    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for q in queues:
        await q.stop()
    for child in children:
        child.terminate()
    for child in children:
        await asyncio.wait_for(child.wait(), 30)
    topics = [options[k] for k in ("requests_topic", "results_topic", "dead_letter_topic")]
    await delete_topics(bootstrap, [*topics, options["requests_topic"] + ".relaxed"])  # and the relaxed lane's
    return {
        "phase": name,
        "jobs": jobs,
        "workers": workers + worker_processes,
        "worker_processes": worker_processes,
        "publish_s": round(published - started, 3),
        "elapsed_s": round(finished - started, 3),
        "throughput_jobs_per_s": round(jobs / (finished - started), 1),
        "latency_ms_p50": round(percentile(latencies, 50), 2),
        "latency_ms_p99": round(percentile(latencies, 99), 2),
        "latency_ms_max": round(max(latencies), 2),
        "latency_ms_mean": round(statistics.fmean(latencies), 2),
        "python_cpu_ms_per_job": round(cpu_s / jobs * 1000, 3),
    }


def run_on_broker(run):
    """``asyncio.run(run(bootstrap))`` on the broker at KAFKA_BOOTSTRAP_SERVERS, or on one this
    starts (tools/kafka_broker.py) and stops afterwards."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        return asyncio.run(run(bootstrap))
    kb = load_broker_script()
    print("starting a Kafka broker (tools/kafka_broker.py) ...", file=sys.stderr)
    broker = kb.start()
    try:
        return asyncio.run(run(broker.bootstrap))
    finally:
        kb.stop(broker)


def load_broker_script():
    spec = importlib.util.spec_from_file_location("kafka_broker", REPO / "tools" / "kafka_broker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kafka_broker"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


async def main_async(args: argparse.Namespace, bootstrap: str) -> list[dict]:
    queue_options = {"partitions": args.partitions, "linger_ms": args.linger_ms}
    if args.fetch_max_wait_ms is not None:
        queue_options["fetch_max_wait_ms"] = args.fetch_max_wait_ms
    results = []
    if args.latency_jobs:
        results.append(
            await run_phase(
                bootstrap,
                "latency",
                args.latency_jobs,
                args.rate,
                1,
                args.workers,
                queue_options,
                args.worker_processes,
                args.warmup,
            )
        )
    if args.jobs:
        results.append(
            await run_phase(
                bootstrap,
                "throughput",
                args.jobs,
                None,
                args.concurrency,
                args.workers,
                queue_options,
                args.worker_processes,
                args.warmup,
            )
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs in the throughput phase (0: skip)")
    parser.add_argument("--latency-jobs", type=int, default=2000, help="jobs in the latency phase (0: skip)")
    parser.add_argument("--rate", type=float, default=200.0, help="jobs/s in the latency phase")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent publishers (throughput)")
    parser.add_argument("--workers", type=int, default=1, help="worker instances in this process (one group)")
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="worker instances in processes of their own (same group), as deployed",
    )
    parser.add_argument("--serve-worker", help=argparse.SUPPRESS)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=500, help="jobs sent before each phase, not timed")
    parser.add_argument("--linger-ms", type=int, default=0)
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=None,
        help="consumers' fetch long-poll (default: the adapter's, 100); lower cuts latency, costs idle CPU",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON lines only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its retries right after topic creation
    if args.serve_worker:
        bootstrap, options, worker_id = json.loads(args.serve_worker)
        asyncio.run(serve_worker(bootstrap, options, worker_id))
        return 0

    results = run_on_broker(lambda bootstrap: main_async(args, bootstrap))
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            where = f" ({r['worker_processes']} in processes of their own)" if r["worker_processes"] else ""
            print(
                f"{r['phase']:>10}: {r['jobs']} jobs, {r['workers']} worker(s){where}: "
                f"{r['throughput_jobs_per_s']:.0f} jobs/s, latency p50 {r['latency_ms_p50']:.1f} ms, "
                f"p99 {r['latency_ms_p99']:.1f} ms, max {r['latency_ms_max']:.1f} ms "
                f"(published in {r['publish_s']:.2f} s, all results in {r['elapsed_s']:.2f} s; "
                f"this process's CPU {r['python_cpu_ms_per_job']:.2f} ms/job)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
