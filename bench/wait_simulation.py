"""Do the stated waits hold on the real architecture's timings? A simulation of the line fed with
measured batch-time curves, through the bot's own estimator (``domain.waits.WaitEstimator``) and
its own rule for places in line (``AdmitJobs.in_line``: the pictures being drawn count).

    python bench/wait_simulation.py            # every curve, every traffic pattern

A worker takes, when free, the jobs it holds (oldest first, up to its batch size; with fewer than
that it gathers for ``batch_wait_s`` first, as ``ProcessJobs`` does); a job reaches it a moment
after its admission; its "started" events and results reach the bot a moment after they happen;
pictures leave at the bot's outbound rate; each batch's time varies by up to 10 % either way.
Each user's stated wait is the estimate when their job was admitted (the first status reply);
the actual wait runs from admission to the picture in the chat. Curves (seconds per batch of n):

- ``h200``: Würstchen full quality, 1024x1024, compiled, on an H200 (docs/benchmarks.md: 0.555 s
  alone, 0.397 s/image in batches of 8, 0.361 in batches of 16), max batch 8;
- ``cpu``: the fast profile at 512 on 2 AMX cores, bf16 (19.2 s a picture), one per batch;
- ``tiny``: the tiny random model at 512, 20+20 steps, on the 2-core machine (about 1 s alone,
  5 s for 8), max batch 8, as in bench/queue_wait_load.py.
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from domain.waits import WaitEstimator  # noqa: E402


def curve_through(points: dict[int, float]) -> Callable[[int], float]:
    """Seconds a batch of n takes: straight lines between the measured batch sizes (and beyond
    the last two)."""
    sizes = sorted(points)

    def seconds(n: int) -> float:
        lo = max([s for s in sizes if s <= n], default=sizes[0])
        hi = min([s for s in sizes if s > lo], default=lo)
        if hi == lo:
            lo, hi = sizes[-2:] if len(sizes) > 1 else (lo, lo)
        if hi == lo:
            return points[lo] * n
        return points[lo] + (points[hi] - points[lo]) * (n - lo) / (hi - lo)

    return seconds


CURVES: dict[str, tuple[Callable[[int], float], int]] = {
    "h200": (curve_through({1: 0.555, 8: 8 * 0.397, 16: 16 * 0.361}), 8),
    "cpu": (curve_through({1: 19.2}), 1),
    "tiny": (curve_through({1: 1.0, 8: 5.0}), 8),
}


@dataclass
class Told:
    user: int
    position: int
    stated_s: float | None
    actual_s: float = 0.0

    @property
    def within_2x(self) -> bool:
        return self.stated_s is not None and self.actual_s > 0 and 0.5 <= self.stated_s / self.actual_s <= 2.0


@dataclass
class Line:
    """One bot, ``workers`` workers, one line of jobs."""

    batch_s: Callable[[int], float]
    max_batch: int
    workers: int = 1
    batch_wait_s: float = 0.05
    publish_lag_s: float = 0.02  # admission -> the worker holds the job
    event_lag_s: float = 0.05  # a worker's event -> the bot
    delivery_s: float = 0.3  # a picture's send, once its turn at the outbound rate came
    send_s: float = 0.1  # the outbound budget a picture takes (3 calls at 30 calls/s)
    jitter: float = 0.1  # each batch takes its curve's time times 1 +- up to this (seeded)
    seed: int = 1
    estimator: WaitEstimator = field(init=False)
    told: dict[int, Told] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.estimator = WaitEstimator(max_batch=self.max_batch, send_s=self.send_s)
        self._events: list[tuple[float, int, str, tuple]] = []
        self._seq = itertools.count()
        self._state: dict[int, str] = {}  # job -> queued / running / done, as the bot's store says
        self._held: list[int] = []  # jobs the workers can take, oldest first
        self._idle = [f"w{i}" for i in range(self.workers)]
        self._gathering: set[str] = set()
        self._out_free = 0.0
        self._batches = itertools.count()
        self._arrived: dict[int, float] = {}
        self._rng = random.Random(self.seed)

    def _at(self, t: float, kind: str, *args: object) -> None:
        heapq.heappush(self._events, (t, next(self._seq), kind, args))

    def admit(self, user: int, t: float) -> None:
        self._at(t, "admit", user)

    def run(self) -> list[Told]:
        while self._events:
            t, _, kind, args = heapq.heappop(self._events)
            getattr(self, f"_{kind}")(t, *args)
        return [self.told[u] for u in sorted(self.told)]

    # --- the bot --------------------------------------------------------------------------------
    def _admit(self, t: float, user: int) -> None:
        self.estimator.arrived(t)
        drawing = sum(1 for s in self._state.values() if s == "running")
        waiting = sum(1 for s in self._state.values() if s == "queued")
        position = drawing + waiting + 1  # AdmitJobs.in_line
        self._state[user] = "queued"
        self._arrived[user] = t
        self.told[user] = Told(user, position, self.estimator.wait_s(position - 1, t))
        self._at(t + self.publish_lag_s, "hold", user)

    def _started_seen(self, t: float, worker: str, jobs: Sequence[int], started: float) -> None:
        for job in jobs:
            self.estimator.started(worker, str(job), started)
            self._state[job] = "running"

    def _result_seen(self, t: float, worker: str, job: int, started: float, ended: float, gen_s: float) -> None:
        self.estimator.finished(worker, str(job), started_at=started, finished_at=ended, generation_s=gen_s)
        self._state[job] = "done"
        sent = max(t, self._out_free) + self.delivery_s
        self._out_free = max(t, self._out_free) + self.send_s
        self.estimator.delivered(sent - t)
        self.told[job].actual_s = sent - self._arrived[job]

    # --- the workers ----------------------------------------------------------------------------
    def _hold(self, t: float, job: int) -> None:
        self._held.append(job)
        self._wake(t)

    def _wake(self, t: float) -> None:
        for worker in list(self._idle):
            if not self._held:
                return
            self._idle.remove(worker)
            if len(self._held) < self.max_batch and self.batch_wait_s > 0:
                self._at(t + self.batch_wait_s, "take", worker)
            else:
                self._take(t, worker)

    def _take(self, t: float, worker: str) -> None:
        jobs, self._held = self._held[: self.max_batch], self._held[self.max_batch :]
        if not jobs:
            self._idle.append(worker)
            return
        seconds = self.batch_s(len(jobs)) * (1 + self._rng.uniform(-self.jitter, self.jitter))
        gen_s = 0.97 * seconds + 1e-5 * next(self._batches)  # results of one batch share it
        self._at(t + self.event_lag_s, "started_seen", worker, jobs, t)
        for job in jobs:
            self._at(t + seconds + self.event_lag_s, "result_seen", worker, job, t, t + seconds, gen_s)
        self._at(t + seconds, "free", worker)

    def _free(self, t: float, worker: str) -> None:
        self._idle.append(worker)
        self._wake(t)


def warm_burst(line: Line, users: int = 20, warmup: int = 2, spacing_s: float = 0.035) -> list[Told]:
    """The issue's run: ``warmup`` prompts one after the other, then ``users`` at once (their
    admissions ``spacing_s`` apart, the bot's status replies at its outbound rate)."""
    t = 0.0
    for i in range(warmup):
        line.admit(-1 - i, t)
        line.run()
        t += line.told[-1 - i].actual_s + 1.0
    for i in range(users):
        line.admit(i, t + i * spacing_s)
    return [r for r in line.run() if r.user >= 0]


def steady(line: Line, load: float, jobs: int = 300, seed: int = 7) -> list[Told]:
    """Poisson arrivals at ``load`` times what the workers can do at full batches."""
    rng = random.Random(seed)
    capacity = line.workers * line.max_batch / line.batch_s(line.max_batch)
    t = 0.0
    for i in range(jobs):
        t += rng.expovariate(load * capacity)
        line.admit(i, t)
    return line.run()[jobs // 10 :]  # the first tenth: the bot has not seen a batch yet


def bursts(line: Line, size: int = 12, every_s: float | None = None, rounds: int = 10, seed: int = 3) -> list[Told]:
    """Bursts of ``size`` users, one every ``every_s`` (default: what the workers clear in
    that time at full batches, so the line never grows for good)."""
    rng = random.Random(seed)
    per_batch = line.batch_s(line.max_batch) / (line.workers * line.max_batch)
    every = every_s or 1.3 * size * per_batch
    user = 0
    for r in range(rounds):
        start = r * every + rng.uniform(0, 0.2 * every)
        for i in range(size):
            line.admit(user, start + i * 0.035)
            user += 1
    return line.run()[size:]


SCENARIOS: dict[str, Callable[[Line], list[Told]]] = {
    "20 at once after 2 warm-up prompts": warm_burst,
    "steady, 50 % load": lambda line: steady(line, 0.5),
    "steady, 90 % load": lambda line: steady(line, 0.9),
    "bursts of 12": bursts,
}


def share_within_2x(rows: Sequence[Told]) -> float:
    return sum(r.within_2x for r in rows) / len(rows)


def summary(rows: Sequence[Told]) -> str:
    ratios = [r.stated_s / r.actual_s for r in rows if r.stated_s is not None and r.actual_s > 0]
    return (
        f"{sum(r.within_2x for r in rows)}/{len(rows)} within 2x ({100 * share_within_2x(rows):.0f} %), "
        f"stated/actual median {statistics.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}"
    )


def main() -> int:
    for name, (batch_s, max_batch) in CURVES.items():
        for scenario, run in SCENARIOS.items():
            rows = run(Line(batch_s, max_batch))
            print(f"{name:5} max batch {max_batch:2}  {scenario:36} {summary(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
