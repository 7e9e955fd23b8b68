"""Load run on the real Apache Kafka broker with the tiny Würstchen model: does batching raise
throughput over one job per generator call?

    python bench/batching_load.py                  # starts a broker unless KAFKA_BOOTSTRAP_SERVERS is set
    python bench/batching_load.py --jobs 32 --batches 1,4,8 --size 256

For each maximum batch size, on fresh topics and groups: ``--jobs`` jobs from ``--users`` users are
published at once; one worker (the service's ``ProcessJobs`` on ``KafkaJobQueue``, the tiny model
through the real ``WuerstchenGenerator``, a local-folder storage) works through them; a bot-side
``DeliverResults`` notes when each result arrives. It prints images/s from the first publish to the
last result, the mean and p95 latency, and the batch sizes the worker actually ran.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from adapters.embedded.delivery_log import MemoryDeliveryLog  # noqa: E402
from adapters.embedded.storage import LocalFolderStorage  # noqa: E402
from adapters.kafka.queue import KafkaJobQueue  # noqa: E402
from adapters.wuerstchen.generator import WuerstchenGenerator  # noqa: E402
from bench.kafka_names import throwaway_names  # noqa: E402
from bench.queue_bench import run_on_broker  # noqa: E402
from config.factories import as_queue  # noqa: E402
from domain.models import Job, JobStatus, Quality, Result  # noqa: E402
from domain.policy import FixedPolicy  # noqa: E402
from domain.quality import QualityProfile  # noqa: E402
from domain.use_cases import DeliverResults, ProcessJobs  # noqa: E402


class Arrivals:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.failed = 0

    async def progress(self, event: object) -> None:
        pass

    async def deliver(self, result: Result, sent: Callable[[], Awaitable[None]]) -> None:
        self.at[result.job_id] = time.time()
        if result.status != JobStatus.DONE:
            self.failed += 1
        await sent()

    async def settle(self, result: Result) -> None:
        pass  # no live status to finish here


class BatchCounter:
    def __init__(self) -> None:
        self.sizes: Counter[int] = Counter()

    def __getattr__(self, name: str):  # the other Metrics methods: nothing to record
        return lambda *args, **kw: None

    def batch_generated(self, profile: str, batch_size: int, seconds: float) -> None:
        self.sizes[batch_size] += 1


async def run(bootstrap: str, generator: WuerstchenGenerator, max_batch: int, args: argparse.Namespace) -> dict:
    names = throwaway_names("load")
    bot_q = as_queue(KafkaJobQueue(bootstrap, client_id="load-bot", **names))
    worker_q = as_queue(KafkaJobQueue(bootstrap, client_id="load-worker", **names))
    await bot_q.start()
    await worker_q.start()
    profile = QualityProfile("load", prior_steps=args.prior_steps, decoder_steps=args.decoder_steps, max_side=args.size)
    counter = BatchCounter()
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalFolderStorage(tmp)
        await storage.start()
        worker = ProcessJobs(
            worker_q,
            generator,
            storage,
            policy=FixedPolicy({"load": profile}, default="load"),
            max_batch=max_batch,
            batch_wait_s=0.2,
            metrics=counter,
            progress_interval_s=60,
        )
        arrivals = Arrivals()
        deliver = DeliverResults(bot_q, arrivals, MemoryDeliveryLog(), poll_timeout_s=0.2)
        stop, stop_bot = asyncio.Event(), asyncio.Event()
        # Warm the consumers (group joins) before the clock starts.
        tasks = [asyncio.create_task(worker.run(stop)), asyncio.create_task(deliver.run(stop_bot))]
        await asyncio.sleep(3)
        jobs = [
            Job(
                user_id=i % args.users,
                chat_id=i % args.users,
                prompt=f"a lighthouse in a storm, take {i}",
                width=args.size,
                height=args.size,
                seed=i,
                quality=Quality.AUTO,
            )
            for i in range(args.jobs)
        ]
        started = time.time()
        await asyncio.gather(*(bot_q.publish_job(j) for j in jobs))
        published = {j.job_id: j.created_at for j in jobs}
        deadline = time.time() + args.timeout
        while len(arrivals.at) < len(jobs) and time.time() < deadline:
            await asyncio.sleep(0.1)
        elapsed = max(arrivals.at.values(), default=time.time()) - started
        stop.set()
        stop_bot.set()
        await asyncio.gather(*tasks)
    await worker_q.stop()
    await bot_q.stop()
    latencies = sorted(arrivals.at[j] - published[j] for j in arrivals.at)
    return {
        "max_batch": max_batch,
        "jobs": len(jobs),
        "done": len(arrivals.at) - arrivals.failed,
        "images_per_s": len(arrivals.at) / elapsed if elapsed > 0 else 0.0,
        "elapsed_s": elapsed,
        "latency_mean_s": statistics.fmean(latencies) if latencies else 0.0,
        "latency_p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0,
        "batches": dict(sorted(counter.sizes.items())),
    }


async def main_async(args: argparse.Namespace, bootstrap: str) -> list[dict]:
    generator = WuerstchenGenerator.tiny(args.model_dir, threads=args.threads, max_batch=max(args.batches))
    await generator.start()
    try:
        return [await run(bootstrap, generator, b, args) for b in args.batches]
    finally:
        await generator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--prior-steps", type=int, default=8)
    parser.add_argument("--decoder-steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "p2p-tiny-wuerstchen"))
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results = run_on_broker(lambda bootstrap: main_async(args, bootstrap))
    print(
        f"tiny Würstchen, {args.size}x{args.size}, {args.prior_steps}+{args.decoder_steps} steps, "
        f"{args.jobs} jobs from {args.users} users, {args.threads} torch threads, real Kafka broker"
    )
    for r in results:
        print(
            f"max batch {r['max_batch']:>2}: {r['images_per_s']:.2f} images/s ({r['done']}/{r['jobs']} done in "
            f"{r['elapsed_s']:.1f} s), latency mean {r['latency_mean_s']:.1f} s, p95 {r['latency_p95_s']:.1f} s, "
            f"batches run {r['batches']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
