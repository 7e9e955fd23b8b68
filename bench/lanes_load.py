"""Lanes under load on the real Apache Kafka broker: does a priority job jump a relaxed backlog,
and does the relaxed lane keep its share?

    python bench/lanes_load.py                    # starts a broker unless KAFKA_BOOTSTRAP_SERVERS is set
    python bench/lanes_load.py --backlog 200 --batch-s 1.0 --max-batch 4 --relaxed-every 4

One worker (the service's ``ProcessJobs`` on ``KafkaJobQueue``, the fake generator made to take
``--batch-s`` a batch, a local-folder storage), on fresh topics and groups; a bot's queue
publishes. Each job's wait is the worker's own ``lane_wait`` figure (acceptance to the start of
its batch, the ``p2p.lane.wait`` metric):

1. idle: a priority job on a service with nothing else to do, ``--probes`` times;
2. backlog: the same with ``--backlog`` relaxed jobs published first (the worker busy with
   them), ``--probes`` times at different moments of a batch;
3. share: ``--priority-burst`` priority jobs at once on top of what relaxed work is left: the
   jobs the worker starts while priority jobs wait, and how many of them are relaxed.

The tests (tests/kafka/test_lanes_load.py) run ``measure`` with smaller figures and check the
claims: a priority job waits no more than one batch longer than on an idle service, and at least
one batch slot in ``relaxed_every`` is the relaxed lane's while both have work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from adapters.embedded.generator import FakeGenerator  # noqa: E402
from adapters.embedded.storage import LocalFolderStorage  # noqa: E402
from adapters.kafka.queue import KafkaJobQueue  # noqa: E402
from bench.kafka_names import throwaway_names  # noqa: E402
from bench.queue_bench import run_on_broker  # noqa: E402
from config.factories import as_queue  # noqa: E402
from domain.models import Job, Lane, Quality  # noqa: E402
from domain.policy import FixedPolicy  # noqa: E402
from domain.quality import QualityProfile  # noqa: E402
from domain.use_cases import ProcessJobs  # noqa: E402

STEPS = 10  # decoder steps of the bench's profile: the fake generator sleeps batch_s / STEPS each


class Starts:
    """The worker's metrics as the bench reads them: each batch's jobs (their lanes and waits,
    in the order the batch has them: its leading lane first) and how long each batch took."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[Lane, float]]] = []
        self.batch_s: list[float] = []
        self.started_at: list[float] = []  # when each batch started (monotonic)
        self._current: list[tuple[Lane, float]] | None = None

    def __getattr__(self, name: str):  # the other Metrics methods: nothing to record
        return lambda *args, **kw: None

    def jobs_in_flight(self, delta: int) -> None:
        if delta > 0:  # a batch starts (``ProduceBatch``: before each job's lane_wait)
            self._current = []
            self.batches.append(self._current)
            self.started_at.append(time.monotonic())

    def lane_wait(self, lane: str, seconds: float) -> None:
        if self._current is not None:
            self._current.append((Lane(lane), seconds))

    def batch_generated(self, profile: str, batch_size: int, seconds: float) -> None:
        self.batch_s.append(seconds)


@dataclass
class LaneFigures:
    backlog: int
    max_batch: int
    relaxed_every: int
    batch_s: float  # median generator time of a batch
    period_s: float = 0.0  # median time from one batch's start to the next's, behind the backlog: one batch
    idle_waits: list[float] = field(default_factory=list)
    backlog_waits: list[float] = field(default_factory=list)
    # while priority jobs waited: batches started, and the jobs of each lane they had
    share_batches: int = 0
    share_jobs: dict[str, int] = field(default_factory=dict)

    @property
    def extra_wait_s(self) -> float:
        """How much longer the worst priority job waited behind the backlog than the worst on an idle service."""
        return max(self.backlog_waits) - max(self.idle_waits)

    def table(self) -> str:
        def row(name: str, idle: str, busy: str) -> str:
            return f"| {name} | {idle} | {busy} |"

        idle, busy = self.idle_waits, self.backlog_waits
        lines = [
            f"| priority job | idle service | {self.backlog} relaxed jobs queued first |",
            "|---|---|---|",
            row("wait, median (s)", f"{statistics.median(idle):.2f}", f"{statistics.median(busy):.2f}"),
            row("wait, max (s)", f"{max(idle):.2f}", f"{max(busy):.2f}"),
            row("waits (s)", " ".join(f"{w:.2f}" for w in idle), " ".join(f"{w:.2f}" for w in busy)),
            row("batch: generation (s, median)", f"{self.batch_s:.2f}", f"{self.batch_s:.2f}"),
            row("batch: start to next start (s, median)", "", f"{self.period_s:.2f}"),
            "",
            f"extra wait behind the backlog: {self.extra_wait_s:.2f} s = "
            f"{self.extra_wait_s / self.period_s:.2f} batch(es) of {self.max_batch} (the bound: 1 batch)",
            f"relaxed share while priority jobs waited: {self.share_jobs.get('relaxed', 0)} of "
            f"{sum(self.share_jobs.values())} jobs started in {self.share_batches} batches "
            f"(guaranteed: 1 slot in {self.relaxed_every}); priority {self.share_jobs.get('priority', 0)}",
        ]
        return "\n".join(lines)


def _job(n: int, lane: Lane, tag: str) -> Job:
    return Job(
        user_id=5000 + n % 20,
        chat_id=5000 + n % 20,
        prompt=f"{tag} a lighthouse in a storm, take {n}",
        width=256,
        height=256,
        seed=n,
        quality=Quality.AUTO,
        lane=lane,
    )


async def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.02)


async def measure(
    bootstrap: str,
    *,
    backlog: int = 200,
    batch_s: float = 1.0,
    max_batch: int = 4,
    relaxed_every: int = 4,
    probes: int = 3,
    priority_burst: int = 24,
    queue_options: dict | None = None,
) -> LaneFigures:
    names = throwaway_names("lanes")
    options = {**names, **(queue_options or {}), "relaxed_every": relaxed_every}
    bot_q = KafkaJobQueue(bootstrap, client_id="lanes-bot", **options)
    worker_q = KafkaJobQueue(bootstrap, client_id="lanes-worker", **options)
    await bot_q.start()
    await worker_q.start()
    starts = Starts()
    profile = QualityProfile("lanes", prior_steps=1, decoder_steps=STEPS, max_side=256)
    generator = FakeGenerator(max_batch=max_batch, step_delay_s=batch_s / STEPS)
    figures = LaneFigures(backlog, max_batch, relaxed_every, batch_s)
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalFolderStorage(tmp)
        await storage.start()
        worker = ProcessJobs(
            as_queue(worker_q),
            generator,
            storage,
            policy=FixedPolicy({"lanes": profile}, default="lanes", honour_requests=False),
            max_batch=max_batch,
            relaxed_every=relaxed_every,
            metrics=starts,  # records what the bench reads
            progress_interval_s=60,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop), name="lanes-worker")
        serial = iter(range(1_000_000))

        async def probe(tag: str) -> float:
            """A priority job's wait, published now."""
            job = _job(next(serial), Lane.PRIORITY, tag).model_copy(update={"created_at": time.time()})
            seen = len(starts.batches)
            await bot_q.publish_job(job)

            def started() -> bool:
                return any(lane == Lane.PRIORITY for batch in starts.batches[seen:] for lane, _ in batch)

            await _wait_for(started, 60 + 4 * batch_s, f"the priority job {tag}")
            return next(w for batch in starts.batches[seen:] for lane, w in batch if lane == Lane.PRIORITY)

        try:
            await probe("warm-up")  # the worker's group joined and reading
            await asyncio.sleep(2 * batch_s)
            for i in range(probes):
                figures.idle_waits.append(await probe(f"idle-{i}"))
                await asyncio.sleep(batch_s * 1.3)
            await asyncio.gather(*(bot_q.publish_job(_job(next(serial), Lane.RELAXED, "bg")) for _ in range(backlog)))
            before = len(starts.batches)
            await _wait_for(lambda: len(starts.batches) >= before + 2, 60 + 4 * batch_s, "the relaxed backlog")
            busy_from = len(starts.started_at) - 1
            for i in range(probes):
                # at different moments of a batch: right after one starts, and a third, two thirds in
                await asyncio.sleep(batch_s * (0.05 + (i % 3) / 3))
                figures.backlog_waits.append(await probe(f"busy-{i}"))
            busy = starts.started_at[busy_from:]
            figures.period_s = statistics.median(b - a for a, b in itertools.pairwise(busy))
            # The share: a priority burst on top of the relaxed work left.
            first = len(starts.batches)
            burst = [_job(next(serial), Lane.PRIORITY, "burst") for _ in range(priority_burst)]
            await asyncio.gather(*(bot_q.publish_job(j) for j in burst))

            def burst_started() -> int:
                return sum(1 for b in starts.batches[first:] for lane, _ in b if lane == Lane.PRIORITY)

            await _wait_for(lambda: burst_started() >= priority_burst, 60 + priority_burst * batch_s, "the burst")
            # From the first batch with a job of the burst to the one with its last: priority work
            # waited all along (the relaxed work too: the backlog is far from drained).
            span = [b for b in starts.batches[first:] if b]
            has_priority = [any(lane == Lane.PRIORITY for lane, _ in b) for b in span]
            span = span[has_priority.index(True) : len(span) - has_priority[::-1].index(True)]
            figures.share_batches = len(span)
            for lane in Lane:
                figures.share_jobs[lane.value] = sum(1 for b in span for job_lane, _ in b if job_lane == lane)
            figures.batch_s = statistics.median(starts.batch_s) if starts.batch_s else batch_s
        finally:
            stop.set()
            task.cancel()  # the relaxed backlog left is not waited for
            await asyncio.wait({task}, timeout=30)
            await worker_q.stop(commit=False)
            await bot_q.stop()
            await generator.stop()
    await _delete(bootstrap, options)
    return figures


async def _delete(bootstrap: str, options: dict) -> None:
    """The run's topics go with it (best effort)."""
    from bench.queue_bench import delete_topics

    topics = [options["requests_topic"], options["requests_topic"] + ".relaxed"]
    topics += [options["results_topic"], options["dead_letter_topic"]]
    with contextlib.suppress(Exception):
        await delete_topics(bootstrap, topics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=200, help="relaxed jobs queued before the probes")
    parser.add_argument("--batch-s", type=float, default=1.0, help="how long the fake generator takes a batch")
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--relaxed-every", type=int, default=4, help="LANES_RELAXED_EVERY")
    parser.add_argument("--probes", type=int, default=5, help="priority jobs timed, idle and behind the backlog")
    parser.add_argument("--priority-burst", type=int, default=24, help="priority jobs at once for the share")
    args = parser.parse_args()

    async def run(bootstrap: str) -> LaneFigures:
        return await measure(
            bootstrap,
            backlog=args.backlog,
            batch_s=args.batch_s,
            max_batch=args.max_batch,
            relaxed_every=args.relaxed_every,
            probes=args.probes,
            priority_burst=args.priority_burst,
        )

    figures = run_on_broker(run)
    print(figures.table())


if __name__ == "__main__":
    main()
