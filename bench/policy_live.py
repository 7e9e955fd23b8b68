"""The adaptive quality policy live, on real parts: the real Apache Kafka broker, one CPU worker
(the service's ``ProcessJobs`` and ``AdaptivePolicy`` on ``KafkaJobQueue``, the tiny Würstchen
through the real ``WuerstchenGenerator``), offered load stepping from half to twice its
full-quality capacity.

    python bench/policy_live.py                    # starts a broker unless KAFKA_BOOTSTRAP_SERVERS is set
    python bench/policy_live.py --phase-s 60 --loads 0.5,2 --quality-steps 24

The tiny model's profiles take the real architecture's relative costs as their steps: the same
size for all and steps in the ratio of the real profiles' CPU times (full quality 12x the fast
profile, as bf16 on 2 AMX cores: 168 s against 13.9 s; balanced 0.6 of full quality). The tiny
model's fixed cost per picture makes the measured ratios smaller (printed at start: 2.8x at 128).
The worker calibrates itself at start (``CalibrateSpeed``: the policy starts from this worker's
own seconds per image, printed), runs one picture per batch as a CPU worker of the real model
does, and the policy's target wait is ``--target-x`` times a full-quality picture. Jobs come as a
Poisson stream at each phase's multiple of the full-quality capacity (one over the calibrated
full-quality seconds); a job's wait runs from its publication to its result on the bot's side. Per
phase it prints the jobs offered, the profile mix of those finished and the p50/p95 wait; jobs
still waiting when the last phase ends are drained and counted in their phase.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from adapters.embedded.delivery_log import MemoryDeliveryLog  # noqa: E402
from adapters.embedded.storage import LocalFolderStorage  # noqa: E402
from adapters.kafka.queue import KafkaJobQueue  # noqa: E402
from adapters.wuerstchen.generator import WuerstchenGenerator  # noqa: E402
from bench.kafka_names import throwaway_names  # noqa: E402
from bench.queue_bench import run_on_broker  # noqa: E402
from domain.models import Job, Quality, Result  # noqa: E402
from domain.policy import AdaptivePolicy  # noqa: E402
from domain.ports import JobQueue  # noqa: E402
from domain.quality import QualityProfile  # noqa: E402
from domain.use_cases import DeliverResults, ProcessJobs  # noqa: E402
from domain.use_cases.calibrate import CalibrateSpeed  # noqa: E402
from domain.validation import Limits  # noqa: E402


def profiles(side: int, quality_steps: int) -> dict[str, QualityProfile]:
    """Full quality, balanced and fast at one size, their steps in the real profiles' cost ratio
    on a CPU (fast 1/12 of full quality; balanced 16+8 of 29+12 steps at the same size: 0.6)."""
    q = quality_steps
    split = [("quality", q), ("balanced", max(2, round(0.6 * q))), ("fast", max(2, round(q / 12)))]
    return {
        name: QualityProfile(
            name, prior_steps=max(1, steps - steps // 3), decoder_steps=max(1, steps // 3), max_side=side
        )
        for name, steps in split
    }


class Results:
    """The bot's side (``Notifier``): when each result arrived, and its profile."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.profile: dict[str, str] = {}

    async def progress(self, event: object) -> None:
        pass

    async def deliver(self, result: Result, sent: Callable[[], Awaitable[None]]) -> None:
        self.at[result.job_id] = time.time()
        self.profile[result.job_id] = result.profile or "?"
        await sent()

    async def settle(self, result: Result) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(bootstrap: str, args: argparse.Namespace) -> None:
    names = throwaway_names("live")
    ladder = profiles(args.size, args.quality_steps)
    generator = WuerstchenGenerator.tiny(args.model_dir, threads=args.threads, max_batch=1)
    await generator.start()
    # (its deliveries are KafkaDelivery, a Delivery in all but name: the port's lists are invariant)
    bot_q = cast("JobQueue", KafkaJobQueue(bootstrap, client_id="live-bot", **names))
    worker_q = cast("JobQueue", KafkaJobQueue(bootstrap, client_id="live-worker", **names))
    await bot_q.start()
    await worker_q.start()
    policy = AdaptivePolicy(dict.fromkeys(ladder, 1.0), profiles=dict(ladder), target_wait_s=1.0)
    speed = await CalibrateSpeed(
        generator,
        ladder,
        policy,
        width=args.size,
        height=args.size,
        budget_s=args.calibration_budget,
    )()
    per_image = speed.seconds_per_image
    policy.target_wait_s = args.target_x * per_image["quality"]
    capacity = 1.0 / per_image["quality"]
    print(
        "worker's own seconds per image (calibrated): "
        + ", ".join(f"{n} {per_image[n]:.2f} ({speed.sources[n]})" for n in ladder)
        + f"; full-quality capacity {capacity:.3f} jobs/s; target wait {policy.target_wait_s:.0f} s",
        flush=True,
    )
    rng = random.Random(args.seed)
    results = Results()
    phase_of: dict[str, float] = {}
    published: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalFolderStorage(tmp)
        await storage.start()
        worker = ProcessJobs(
            worker_q,
            generator,
            storage,
            policy=policy,
            max_batch=1,
            batch_wait_s=0.0,
            progress_interval_s=60,
            limits=Limits(min_side=min(256, args.size)),
        )
        deliver = DeliverResults(bot_q, results, MemoryDeliveryLog(), poll_timeout_s=0.2)
        stop, stop_bot = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(worker.run(stop)), asyncio.create_task(deliver.run(stop_bot))]
        await asyncio.sleep(3)  # the consumers join their groups
        i = 0
        for load in args.loads:
            end = time.time() + args.phase_s
            while True:
                await asyncio.sleep(rng.expovariate(load * capacity))
                if time.time() > end:
                    break
                job = Job(
                    user_id=i,
                    chat_id=i,
                    prompt=f"a lighthouse in a storm, take {i}",
                    width=args.size,
                    height=args.size,
                    seed=i,
                    quality=Quality.AUTO,
                )
                await bot_q.publish_job(job)
                published[job.job_id], phase_of[job.job_id] = time.time(), load
                i += 1
        deadline = time.time() + args.drain_s
        while len(results.at) < len(published) and time.time() < deadline:
            await asyncio.sleep(0.2)
        stop.set()
        stop_bot.set()
        await asyncio.gather(*tasks)
    await worker_q.stop()
    await bot_q.stop()
    await generator.stop()
    print(
        f"{'offered load':>12}  {'jobs':>4}  {'done':>4}  {'profile mix (quality/balanced/fast)':>36}  "
        f"{'p50 wait':>8}  {'p95 wait':>8}"
    )
    for load in args.loads:
        ids = [j for j in published if phase_of[j] == load]
        done = [j for j in ids if j in results.at]
        mix = Counter(results.profile[j] for j in done)
        waits = [results.at[j] - published[j] for j in done]
        shares = "/".join(f"{100 * mix[n] / max(1, len(done)):.0f}%" for n in ladder)
        print(
            f"{load:>11.1f}x  {len(ids):>4}  {len(done):>4}  {shares:>36}  {pct(waits, 0.5):>7.1f}s  "
            f"{pct(waits, 0.95):>7.1f}s"
        )
    waits_all = [results.at[j] - published[j] for j in results.at if j in published]
    if waits_all:
        print(f"all phases: {len(results.at)}/{len(published)} done, mean wait {statistics.fmean(waits_all):.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--loads",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.5, 1.0, 1.5, 2.0],
        help="offered load per phase, as multiples of the full-quality capacity",
    )
    parser.add_argument("--phase-s", type=float, default=90.0, help="seconds each phase offers jobs")
    parser.add_argument("--drain-s", type=float, default=90.0, help="most seconds to wait for the rest")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--quality-steps", type=int, default=12, help="full quality's prior+decoder steps")
    parser.add_argument("--target-x", type=float, default=3.0, help="target wait, in full-quality pictures")
    parser.add_argument("--calibration-budget", type=float, default=90.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "p2p-tiny-wuerstchen"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(
        f"adaptive policy live: tiny Würstchen {args.size}x{args.size}, one CPU worker ({args.threads} torch "
        f"threads, one picture per batch), real Kafka broker, phases of {args.phase_s:.0f} s at "
        f"{', '.join(f'{x:g}x' for x in args.loads)} the full-quality capacity",
        flush=True,
    )
    run_on_broker(lambda bootstrap: run(bootstrap, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
