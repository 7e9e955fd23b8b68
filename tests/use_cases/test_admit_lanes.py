"""Admission gives each job its lane from the user's usage (the in-memory adapters): the daily
allowance, failed jobs costing nothing, places in line priority first, and a cancellation in its
job's lane."""

from __future__ import annotations

import itertools

from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.user_store import MemoryUserStore
from domain.lanes import LaneReason, LaneRules
from domain.models import Cancel, Lane, Locale, Quality
from domain.use_cases import SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob
from domain.use_cases.balance import ShowBalance
from domain.users import JobState, Outcome

NOW = 1_765_000_000.0  # 2025-12-06 05:46:40 UTC


class Front:
    """The chat front: every status opened (job id, lane, place), nothing refused."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, Lane, int]] = []
        self.cancelled_jobs: list[str] = []

    def album(self, job_ids):
        pass

    async def refused(self, job, error, reply_to):
        raise AssertionError(f"refused: {error}")

    async def open_status(self, job, position, reply_to):
        self.opened.append((job.job_id, job.lane, position))
        return None

    def close_status(self, job_id):
        pass

    async def cancelled(self, record, locale):
        self.cancelled_jobs.append(record.job_id)


async def parts(rules: LaneRules):
    queue, store = MemoryJobQueue(), MemoryUserStore()
    await queue.start()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    front = Front()
    ticks = itertools.count()
    admit = AdmitJobs(submit, store, front, lanes=rules, clock=lambda: NOW + next(ticks))  # a second a call
    return queue, store, submit, front, admit


def ask(submit, user: int, n: int):
    return submit.prepare(user_id=user, chat_id=user, prompt=f"a fox {n}", quality=Quality.FAST)


async def test_past_the_allowance_jobs_go_relaxed_and_are_not_refused(tmp_path):
    queue, store, submit, front, admit = await parts(LaneRules(daily_allowance=2, relaxed_after=0))
    lanes = []
    for n in range(3):
        [job] = await admit([ask(submit, 1, n)])
        lanes.append(job.lane)
    assert lanes == [Lane.PRIORITY, Lane.PRIORITY, Lane.RELAXED]
    assert [(await store.get_job(j)).lane for j, _, _ in front.opened] == lanes  # the record agrees
    assert await queue.backlogs() == {Lane.PRIORITY: 2, Lane.RELAXED: 1}
    balance = await ShowBalance(store, admit.lanes, clock=lambda: NOW)(1)
    assert (balance.allowance.left, balance.next_lane.reason) == (0, LaneReason.ALLOWANCE_USED)
    assert balance.allowance.renews_at == 1_765_065_600.0  # the next midnight UTC
    # A picture that failed costs nothing: the allowance has one again.
    await store.finish(front.opened[0][0], Outcome(JobState.FAILED, NOW, error_code="generation_failed"))
    [again] = await admit([ask(submit, 1, 9)])
    assert again.lane == Lane.PRIORITY
    # Another user is not touched.
    [other] = await admit([ask(submit, 2, 0)])
    assert other.lane == Lane.PRIORITY


async def test_places_count_the_priority_lane_first():
    _queue, _store, submit, front, admit = await parts(LaneRules(relaxed_after=2))
    for n in range(3):
        await admit([ask(submit, 1, n)])  # the heavy user's third picture: relaxed
    [light] = await admit([ask(submit, 2, 0)])
    places = await admit.queue_positions()
    heavy_relaxed = front.opened[2][0]
    assert front.opened[2][1] == Lane.RELAXED
    assert places[light.job_id] == 3  # after the two priority ones before it, before the relaxed one
    assert places[heavy_relaxed] == 4
    assert front.opened[-1] == (light.job_id, Lane.PRIORITY, 3)  # what the status said


async def test_variations_count_each_picture_and_a_cancellation_follows_its_job():
    queue, store, submit, front, admit = await parts(LaneRules(relaxed_after=2))
    jobs = await admit([ask(submit, 1, n) for n in range(3)])  # asked for together
    assert [j.lane for j in jobs] == [Lane.PRIORITY, Lane.PRIORITY, Lane.RELAXED]
    record = await store.get_job(jobs[2].job_id)
    assert await CancelJob(store, queue, front, clock=lambda: NOW)(record, 1, Locale.EN)
    taken = await queue.receive_jobs(10, 0.1)
    messages = [d.message for d in taken]
    assert [type(m).__name__ for m in messages] == ["Job", "Job", "Job", "Cancel"]  # priority first
    cancel = messages[-1]
    assert isinstance(cancel, Cancel) and cancel.lane == Lane.RELAXED and cancel.job_id == jobs[2].job_id
