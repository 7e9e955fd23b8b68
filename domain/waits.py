"""How long a queued job will wait, from what the bot sees of the workers: pure rules, no I/O.

The bot sees every worker's progress events and results (any bot instance may get any event), so
it knows, from real data:

- how long a batch of ``n`` images takes (a result's ``generation_s`` is shared by its batch, so
  results of one batch have the same worker and the same ``generation_s``: that gives the batch's
  size; its cycle runs from the batch's start to its last result);
- which workers are busy now, with which batch since when, and how far along (progress steps,
  used when a batch runs longer than batches of its size did: steps are not all alike);
- how many workers there are (seen lately) and the largest batch they run;
- when jobs were admitted lately (``arrived``): how many more will come while a job waits.

A place in line counts every picture that will come before the user's own: the ones being drawn
now and the ones waiting ahead (``domain.use_cases.admit``). ``wait_s(ahead)`` takes that count,
sets aside the jobs it knows are being drawn, and simulates the rest of the line as a worker runs
it: a free worker has already taken the jobs waiting ahead (they were published before this one,
and a worker starts at once with what it holds), so this job goes into a later batch; a worker
that frees up later takes everything that waits by then, up to its batch size, the jobs that
will arrive meanwhile included (as many as arrived in as long a time just before). The answer is
when the batch holding the job finishes (or, when the pictures ahead need longer to go out at the
bot's outbound rate, that), plus the delivery time seen lately. Before any batch was seen, the
workers' own figures on their progress events (seconds per image, timed at their start) stand in
for batches; with neither the answer is ``None`` (unknown): a guess would be a lie by orders of
magnitude between a GPU and a CPU worker.
"""

from __future__ import annotations

import heapq
import statistics
from collections import OrderedDict, deque
from dataclasses import dataclass, field

# The share of a lone image's time that each further image of a batch adds, until batches of
# two sizes are seen. Measured (docs/benchmarks.md): about 0.37 for Würstchen eager on an H200 at
# 1024, 0.68 compiled, near 1 on a CPU with the real model, 0.57 with the tiny one on 2 cores. A
# half is within 1.5x of each of them, so a batch of 8 guessed from one lone picture stays within
# 2x of its time on all of them; the fit from two sizes replaces it.
MARGINAL = 1 / 2


@dataclass
class _Batch:
    worker_id: str
    started_at: float
    size: int = 0
    finished_at: float = 0.0

    @property
    def cycle_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at)


@dataclass
class _Running:
    started_at: float
    jobs: set[str] = field(default_factory=set)
    step: int = 0
    total: int = 0
    step_at: float = 0.0


@dataclass
class WaitEstimator:
    max_batch: int = 1  # what the workers are configured for (a hint; larger batches seen win)
    horizon_s: float = 900.0  # batches and workers older than this are forgotten
    keep: int = 64  # batches remembered
    # Seconds of the bot's outbound budget one picture takes (its calls / the global rate): with
    # fast workers the pictures ahead queue up there, not at the workers.
    send_s: float = 0.0
    _batches: OrderedDict[tuple[str, float], _Batch] = field(default_factory=OrderedDict)
    _running: dict[str, _Running] = field(default_factory=dict)  # worker -> its current batch
    _seen: dict[str, float] = field(default_factory=dict)  # worker -> last event
    _delivery: list[float] = field(default_factory=list)  # result -> sent, seconds
    _told: dict[str, float] = field(default_factory=dict)  # worker -> its own seconds per image
    _arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=256))  # admissions, in order

    # --- what happened ---------------------------------------------------------------------------
    def started(self, worker_id: str, job_id: str, at: float, seconds_per_image: float = 0.0) -> None:
        """A worker started a job (its batch starts with it, or a new batch does); it may say
        how many seconds an image takes it (its calibration), for use until batches are seen."""
        self._seen[worker_id] = max(self._seen.get(worker_id, 0.0), at)
        self.told(worker_id, seconds_per_image)
        run = self._running.get(worker_id)
        if run is None or (abs(at - run.started_at) > 1.0 and job_id not in run.jobs):
            run = self._running[worker_id] = _Running(started_at=at)
        run.jobs.add(job_id)

    def progressed(
        self, worker_id: str, job_id: str, step: int, total: int, at: float, seconds_per_image: float = 0.0
    ) -> None:
        self._seen[worker_id] = max(self._seen.get(worker_id, 0.0), at)
        self.told(worker_id, seconds_per_image)
        run = self._running.get(worker_id)
        if run is not None and job_id in run.jobs and step > run.step and total:
            run.step, run.total, run.step_at = step, total, at

    def finished(
        self,
        worker_id: str,
        job_id: str,
        *,
        started_at: float,
        finished_at: float,
        generation_s: float,
    ) -> None:
        """A result: ``started_at`` is when its batch started (accepted + queue wait)."""
        self._seen[worker_id] = max(self._seen.get(worker_id, 0.0), finished_at)
        key = (worker_id, round(generation_s, 6))
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch(worker_id, started_at)
            while len(self._batches) > self.keep:
                self._batches.popitem(last=False)
        batch.size += 1
        batch.started_at = min(batch.started_at, started_at)
        batch.finished_at = max(batch.finished_at, finished_at)
        self.ended(worker_id, job_id)

    def told(self, worker_id: str, seconds_per_image: float) -> None:
        """A worker's own figure for one image (0: it did not say)."""
        if seconds_per_image > 0:
            self._told[worker_id] = seconds_per_image

    def ended(self, worker_id: str, job_id: str) -> None:
        """The job left its worker (finished, failed or cancelled)."""
        run = self._running.get(worker_id)
        if run is not None:
            run.jobs.discard(job_id)
            if not run.jobs:
                del self._running[worker_id]

    def arrived(self, at: float) -> None:
        """A job was admitted (it joins the line): how fast jobs come tells how full the batch
        that takes a waiting job will be."""
        self._arrivals.append(at)

    def delivered(self, seconds: float) -> None:
        """How long it took from a result to the picture in the chat."""
        self._delivery.append(max(0.0, seconds))
        del self._delivery[:-20]

    # --- what it means ---------------------------------------------------------------------------
    def _recent(self, now: float) -> list[_Batch]:
        return [b for b in self._batches.values() if now - b.finished_at < self.horizon_s and b.size]

    def workers(self, now: float) -> int:
        return max(1, sum(1 for at in self._seen.values() if now - at < self.horizon_s))

    def batch_limit(self, now: float) -> int:
        return max([self.max_batch, *(b.size for b in self._recent(now))])

    def batch_s(self, size: int, now: float) -> float | None:
        """Seconds a batch of ``size`` takes: a line through the recent batches (per-batch cost
        plus per-image cost)."""
        recent = self._recent(now)[-16:]
        if not recent:
            told = [s for w, s in self._told.items() if now - self._seen.get(w, 0.0) < self.horizon_s]
            if not told:
                return None
            # No batch seen yet: the workers' own timing of one image, grown as batches grow.
            return max(0.05, statistics.median(told) * (1 - MARGINAL + MARGINAL * size))
        sizes = {b.size for b in recent}
        if len(sizes) >= 2:
            xs = [float(b.size) for b in recent]
            ys = [b.cycle_s for b in recent]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            var = sum((x - mx) ** 2 for x in xs)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
            if slope > 0:
                base = max(0.0, my - slope * mx)
                return max(0.05, base + slope * size)
        # One size seen (or no line to draw): a part per batch and a part (MARGINAL) per image.
        lone = statistics.median(b.cycle_s / (1 - MARGINAL + MARGINAL * b.size) for b in recent)
        return max(0.05, lone * (1 - MARGINAL + MARGINAL * size))

    def _live(self, now: float) -> dict[str, _Running]:
        """The batches being drawn now, by worker (those of workers not heard of lately dropped)."""
        for worker in [w for w in self._running if now - self._seen.get(w, 0.0) > self.horizon_s]:
            del self._running[worker]
        return self._running

    def drawing(self, now: float) -> int:
        """How many jobs are being drawn now, as far as this bot has heard."""
        return sum(len(run.jobs) for run in self._live(now).values())

    def _free_at(self, now: float) -> list[float]:
        """When each worker can take its next batch."""
        out = []
        for run in self._live(now).values():
            expected = self.batch_s(max(1, len(run.jobs)), now) or 0.0
            end = run.started_at + expected
            if end <= now:  # running late: by its progress (steps are not all alike), or a bit more
                if run.step and run.total and run.step_at > run.started_at:
                    end = run.started_at + (run.step_at - run.started_at) * run.total / run.step
                end = max(end, now + 0.25 * expected)
            out.append(max(end, now + 0.1))
        out += [now] * max(0, self.workers(now) - len(out))
        return out

    def coming(self, within_s: float, now: float) -> int:
        """How many jobs will be admitted in the next ``within_s`` seconds: as many as in as long a
        time just before (the latest admission, most likely the job asking, not counted)."""
        recent = sum(1 for at in self._arrivals if now - within_s < at <= now)
        return max(0, recent - 1)

    def wait_s(self, ahead: int, now: float) -> float | None:
        """Seconds until a job with ``ahead`` pictures before it (being drawn or waiting) is in
        the chat; None while nothing is known of the workers' speed."""
        if self.batch_s(1, now) is None:
            return None
        limit = self.batch_limit(now)
        free = self._free_at(now)
        heapq.heapify(free)
        waiting = max(0, ahead - self.drawing(now))  # those being drawn are in ``free`` already
        while True:
            at = heapq.heappop(free)
            if waiting >= limit or (waiting and at <= now):
                # A full batch of jobs ahead; or a free worker, which took those ahead already.
                done = at + (self.batch_s(min(limit, waiting), now) or 0.0)
                waiting -= min(limit, waiting)
                heapq.heappush(free, done)
                continue
            # This job's batch: those still ahead, this one, and (when the worker frees up later)
            # the jobs that come meanwhile.
            take = min(limit, waiting + 1 + (self.coming(at - now, now) if at > now else 0))
            done = at + (self.batch_s(take, now) or 0.0)
            delivery = statistics.median(self._delivery) if self._delivery else 0.0
            outbound = (max(0, ahead) + 1) * self.send_s
            return max(0.5, max(done - now, outbound) + delivery)
