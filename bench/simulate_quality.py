"""Simulate the quality policies against steady, bursty and overload traffic.

    python bench/simulate_quality.py            # both machines, all scenarios
    python bench/simulate_quality.py --machine h200 --hours 2

A discrete-event simulation: Poisson arrivals (with bursts), workers that take up to
``max_batch`` compatible jobs from a FIFO queue, and service times per profile and batch size.
The policies are the service's own classes (``domain.policy``), fed the simulated clock, backlog
and measured batch times exactly as the worker feeds them.

Service times:
- H200 (bf16, measured, see ../shared/DESIGN.md): the full-quality profile (1024x1024, 29 guided
  prior evaluations + 12 decoder steps) takes 1.35 s for one image, 0.56 s/image in batches of 8
  and 0.55 s/image in batches of 16. The other profiles are scaled by their step counts and
  pixel area, weighting the prior 68% and the decoder 32% as in the CPU per-step timings below.
- CPU (this project's 2-core machine, fp32, from DESIGN.md): one guided prior step 33 s at
  1024x1024 and 7.5 s at 512x512; one decoder step 37 s and 9.4 s. Batching does not help on CPU.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from domain.models import Quality
from domain.policy import AdaptivePolicy, FixedPolicy
from domain.quality import DEFAULT_PROFILES, LADDER

PRIOR_SHARE = 0.68  # share of a full-quality image's time spent in the prior (CPU timings)


def relative_cost(profile: str) -> float:
    """Cost of one image of ``profile`` relative to the full-quality profile at 1024x1024."""
    base, p = DEFAULT_PROFILES[Quality.QUALITY], DEFAULT_PROFILES[profile]
    side = min(1024, p.max_side)
    steps = PRIOR_SHARE * p.prior_steps / base.prior_steps + (1 - PRIOR_SHARE) * p.decoder_steps / base.decoder_steps
    return steps * (side / 1024) ** 2


@dataclass(frozen=True)
class Machine:
    name: str
    workers: int
    max_batch: int
    target_wait_s: float
    # seconds per full-quality image at 1024x1024 by batch size (interpolated in between)
    per_image: dict[int, float]
    # rates for the scenarios, as multiples of the full-quality capacity
    hours: float

    def batch_seconds(self, profile: str, n: int) -> float:
        sizes = sorted(self.per_image)
        if n <= sizes[0]:
            per = self.per_image[sizes[0]]
        elif n >= sizes[-1]:
            per = self.per_image[sizes[-1]]
        else:
            lo = max(s for s in sizes if s <= n)
            hi = min(s for s in sizes if s >= n)
            per = (
                self.per_image[lo]
                if lo == hi
                else self.per_image[lo] + (self.per_image[hi] - self.per_image[lo]) * (n - lo) / (hi - lo)
            )
        return per * n * relative_cost(profile)

    @property
    def quality_capacity(self) -> float:
        """Images per second at full quality with full batches."""
        return self.workers * self.max_batch / self.batch_seconds(Quality.QUALITY, self.max_batch)


H200 = Machine("h200", workers=1, max_batch=8, target_wait_s=20.0, per_image={1: 1.35, 8: 0.56, 16: 0.55}, hours=1.0)
CPU = Machine(
    "cpu-2core",
    workers=4,
    max_batch=1,
    target_wait_s=900.0,
    per_image={1: 29 * 33 + 12 * 37},  # 1401 s per full-quality image
    hours=48.0,
)


@dataclass
class Scenario:
    name: str
    rate: Callable[[float], float]  # arrivals per second at time t


def scenarios(machine: Machine) -> list[Scenario]:
    cap = machine.quality_capacity
    burst_period = 600.0 if machine is H200 else 6 * 3600.0
    burst_len = 90.0 if machine is H200 else 3600.0
    return [
        Scenario("steady (70% of full-quality capacity)", lambda t: 0.7 * cap),
        Scenario(
            "bursty (30% base, 6x bursts)",
            lambda t: 6.0 * cap if (t % burst_period) < burst_len else 0.3 * cap,
        ),
        Scenario("overload (2.5x full-quality capacity)", lambda t: 2.5 * cap),
    ]


def arrivals(scenario: Scenario, horizon: float, rng: random.Random) -> list[float]:
    """Non-homogeneous Poisson arrivals by thinning."""
    peak = max(scenario.rate(t) for t in range(0, int(horizon), 10))
    t, out = 0.0, list[float]()
    while True:
        t += rng.expovariate(peak)
        if t >= horizon:
            return out
        if rng.random() < scenario.rate(t) / peak:
            out.append(t)


@dataclass
class Outcome:
    waits: list[float] = field(default_factory=list)
    profiles: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0


def simulate(machine: Machine, times: list[float], make_policy: Callable[[Callable[[], float]], object]) -> Outcome:
    clock = [0.0]
    policy = make_policy(lambda: clock[0])
    queue: deque[float] = deque()
    free: list[tuple[float, int, int]] = [(0.0, w, 0) for w in range(machine.workers)]  # (free at, worker, jobs)
    heapq.heapify(free)
    out = Outcome()
    i = 0
    horizon = times[-1] if times else 0.0
    while i < len(times) or queue:
        at, worker, _ = heapq.heappop(free)
        # admit every arrival up to the moment this worker is free
        while i < len(times) and times[i] <= at:
            queue.append(times[i])
            i += 1
        if not queue:
            if i >= len(times):
                break
            heapq.heappush(free, (times[i], worker, 0))
            continue
        clock[0] = at
        # The backlog the worker sees is the consumer lag: queued jobs plus jobs in service.
        in_service = sum(n for t, _, n in free if t > at)
        profile, _ = policy.choose(Quality.AUTO, len(queue) + in_service)  # type: ignore[attr-defined]
        n = min(machine.max_batch, len(queue))
        seconds = machine.batch_seconds(profile.name, n)
        for _ in range(n):
            out.waits.append(at - queue.popleft())
        out.profiles[profile.name] += n
        policy.observe(profile.name, n, seconds)  # type: ignore[attr-defined]
        heapq.heappush(free, (at + seconds, worker, n))
        if at > horizon * 3 + 3600:  # hopeless overload: stop and count what is left
            out.unfinished = len(queue) + len(times) - i
            break
    return out


def policies(machine: Machine) -> dict[str, Callable[[Callable[[], float]], object]]:
    estimates = {p: machine.batch_seconds(p, machine.max_batch) / machine.max_batch for p in LADDER}
    return {
        "fixed quality": lambda clock: FixedPolicy(DEFAULT_PROFILES, default=Quality.QUALITY),
        "fixed fast": lambda clock: FixedPolicy(DEFAULT_PROFILES, default=Quality.FAST),
        "adaptive": lambda clock: AdaptivePolicy(
            dict(estimates),
            target_wait_s=machine.target_wait_s,
            workers=machine.workers,
            clock=clock,
            min_dwell_s=machine.target_wait_s / 2,
        ),
    }


def pct(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(machine: Machine, hours: float, seed: int) -> str:
    horizon = hours * 3600
    lines = [
        f"### {machine.name}: {machine.workers} worker(s), batch up to {machine.max_batch}, "
        f"wait target {machine.target_wait_s:.0f} s, {hours:g} h simulated",
        "",
        "full-quality capacity {:.3g} img/s; s/image at full batch: {}".format(
            machine.quality_capacity,
            ", ".join(f"{p} {machine.batch_seconds(p, machine.max_batch) / machine.max_batch:.3g}" for p in LADDER),
        ),
        "",
        "| traffic | policy | jobs | p50 wait s | p95 wait s | meets target (p95) | quality | balanced | fast |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario in scenarios(machine):
        times = arrivals(scenario, horizon, random.Random(seed))
        for name, make in policies(machine).items():
            out = simulate(machine, times, make)
            total = sum(out.profiles.values()) or 1
            share = {p: 100 * out.profiles[p] / total for p in LADDER}
            p95 = pct(out.waits, 95)
            lines.append(
                f"| {scenario.name} | {name} | {len(times)} | {pct(out.waits, 50):.1f} | {p95:.1f} | "
                f"{'yes' if p95 <= machine.target_wait_s else 'no'} | "
                f"{share['quality']:.0f}% | {share['balanced']:.0f}% | {share['fast']:.0f}% |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machine", choices=["h200", "cpu", "both"], default="both")
    parser.add_argument("--hours", type=float, help="simulated time (default: per machine)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    machines = {"h200": [H200], "cpu": [CPU], "both": [H200, CPU]}[args.machine]
    for machine in machines:
        print(report(machine, args.hours or machine.hours, args.seed))
        print()


if __name__ == "__main__":
    main()
