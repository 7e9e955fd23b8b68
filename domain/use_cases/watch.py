"""What the bot learns of the workers from their events, kept in one place: when each worker was
last seen (/stats), what makes the pictures (/start, /help, /settings), and the wait estimates
(``WaitEstimator``). The chat adapter feeds it every checked progress event and result
(``ResultChannel.observed`` / ``arrived``); nothing else writes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.models import GeneratorKind, Progress, Result, Stage
from domain.waits import WaitEstimator


@dataclass
class WatchWorkers:
    estimator: WaitEstimator = field(default_factory=WaitEstimator)
    workers_seen: dict[str, float] = field(default_factory=dict)  # worker id -> wall clock
    # This process's own generator (--role all), else what the last result said (a bot-only
    # process); None until known.
    generator_kind: GeneratorKind | None = None

    def _seen(self, worker_id: str, at: float) -> None:
        if worker_id:
            self.workers_seen[worker_id] = max(self.workers_seen.get(worker_id, 0.0), at)

    def progressed(self, event: Progress) -> None:
        """A worker's progress event: it is alive, and its batch is this far along."""
        self._seen(event.worker_id, event.at)
        if event.stage == Stage.STARTED:
            self.estimator.started(event.worker_id, event.job_id, event.at, event.seconds_per_image)
        elif event.stage == Stage.GENERATING:
            self.estimator.progressed(
                event.worker_id, event.job_id, event.step, event.total_steps, event.at, event.seconds_per_image
            )

    def finished(self, result: Result) -> None:
        """A worker's result: for the wait estimates (its batch's size and time) and /stats."""
        self._seen(result.worker_id, result.finished_at)
        if result.generator_kind is not None:
            self.generator_kind = result.generator_kind
        timings = result.timings
        if result.image_key and timings.generation_s > 0 and result.accepted_at:
            self.estimator.finished(
                result.worker_id,
                result.job_id,
                started_at=result.accepted_at + timings.queue_wait_s,
                finished_at=result.finished_at,
                generation_s=timings.generation_s,
            )
        else:
            self.estimator.ended(result.worker_id, result.job_id)

    def delivered(self, seconds: float) -> None:
        """A picture reached its chat ``seconds`` after the worker finished it."""
        self.estimator.delivered(max(0.0, seconds))
