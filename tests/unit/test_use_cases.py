"""The bot's use cases on the memory adapters: admitting prompts (AdmitJobs), cancelling
(CancelJob), repeating with new seeds (repeat_jobs) and what a result does to its job on
delivery (RecordOutcomes). The chat side is a recording Announcer / ResultChannel."""

from __future__ import annotations

import itertools

import pytest

from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.user_store import MemoryUserStore
from domain.errors import DomainError, RecipientGone
from domain.models import Cancel, Job, JobStatus, Locale, Progress, Quality, Result
from domain.use_cases import SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob, repeat_jobs
from domain.use_cases.outcomes import RecordOutcomes
from domain.users import JobRecord, JobState, Outcome, SendAs, TooManyJobsInFlight, UserLimits, UserPrefs
from domain.waits import WaitEstimator

NOW = 1_700_000_000.0


class Announcer:
    def __init__(self, store: MemoryUserStore | None = None) -> None:
        self.calls: list[tuple] = []
        self.ids = itertools.count(100)
        self.open_fails: type[Exception] | None = None
        self.finish_meanwhile: MemoryUserStore | None = store  # a result that came first

    def album(self, job_ids):
        self.calls.append(("album", list(job_ids)))

    async def refused(self, job: Job, error: DomainError, reply_to):
        self.calls.append(("refused", job.chat_id, error.code, reply_to))

    async def open_status(self, job: Job, position: int, reply_to):
        if self.open_fails is RecipientGone:
            raise RecipientGone(chat_id=job.chat_id)
        if self.open_fails is not None:
            return None
        self.calls.append(("open", job.job_id, position, reply_to))
        return next(self.ids)

    async def withdraw_status(self, job: Job, message_id: int):
        self.calls.append(("withdraw", job.job_id, message_id))

    async def waiting_for_service(self, job: Job):
        self.calls.append(("waiting", job.job_id, job.status_message_id))

    def close_status(self, job_id):
        self.calls.append(("close", job_id))

    async def cancelled(self, record: JobRecord, locale: Locale):
        self.calls.append(("cancelled", record.job_id, locale))

    def named(self, what: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == what]


class DownQueue(MemoryJobQueue):
    async def publish_job(self, job):
        raise ConnectionError("broker away")

    async def publish_cancel(self, cancel):
        raise ConnectionError("broker away")


@pytest.fixture
async def bot():
    queue = MemoryJobQueue()
    await queue.start()
    store = MemoryUserStore()
    submit = SubmitPrompt(queue, default_width=256, default_height=256, seed_source=lambda: 7)
    announcer = Announcer()
    admit = AdmitJobs(submit, store, announcer, limits=UserLimits(max_in_flight=3, per_minute=10), clock=lambda: NOW)
    return queue, store, submit, announcer, admit


async def queued(queue: MemoryJobQueue) -> list[Job | Cancel]:
    out = []
    for d in await queue.receive_jobs(100, 0.05):
        out.append(d.message)
        await d.ack()
    return out


def job(submit: SubmitPrompt, user: int = 1, prompt: str = "a red fox", **kw) -> Job:
    return submit.prepare(user_id=user, chat_id=user, prompt=prompt, **kw)


async def test_an_admitted_job_is_recorded_announced_and_queued(bot):
    queue, store, submit, announcer, admit = bot
    [accepted] = await admit([job(submit)], reply_to=55)
    assert accepted.status_message_id == 100 and accepted.created_at == NOW
    assert announcer.named("open") == [("open", accepted.job_id, 1, 55)]
    record = await store.get_job(accepted.job_id)
    assert record is not None and record.state == JobState.QUEUED
    assert record.status_message_id == 100 and record.request_message_id == 55
    assert await store.unpublished(NOW + 60) == []  # marked published: the outbox leaves it
    assert [j.job_id for j in await queued(queue)] == [accepted.job_id]
    assert [j.status_message_id for j in [accepted]] == [100]
    assert submit.in_flight == set()


async def test_jobs_get_their_places_in_line(bot):
    queue, _store, submit, announcer, admit = bot
    await admit([job(submit, user=1)])
    admit.clock = lambda: NOW + 1
    second = await admit([job(submit, user=2, prompt="b"), job(submit, user=2, prompt="c")], album=True)
    assert [c[2] for c in announcer.named("open")] == [1, 2, 3]
    assert announcer.named("album") == [("album", [j.job_id for j in second])]
    assert second[0].created_at < second[1].created_at  # one request's jobs stay in order
    assert await admit.queue_positions() == {j.job_id: i + 2 for i, j in enumerate(second)} | {
        (await queued(queue))[0].job_id: 1
    }


async def test_a_place_counts_the_pictures_being_drawn(bot):
    # A place is what users read it as: the pictures that come before theirs, plus one. Two jobs
    # being drawn come first, then those waiting (before: "position 1" behind a whole batch).
    _queue, store, submit, announcer, admit = bot
    drawn = await admit([job(submit, user=1)])
    admit.clock = lambda: NOW + 0.5  # (one instant apart: the store orders by creation time)
    drawn += await admit([job(submit, user=2, prompt="b")])
    for j in drawn:
        await store.mark_started(j.job_id, NOW, "w1")
    admit.clock = lambda: NOW + 1
    [waiting] = await admit([job(submit, user=3, prompt="c")])
    assert [c[2] for c in announcer.named("open")] == [1, 2, 3]
    assert await admit.queue_positions() == {waiting.job_id: 3}


async def test_admissions_tell_the_wait_estimate_how_fast_jobs_come(bot):
    _queue, _store, submit, _announcer, admit = bot
    admit.waits = WaitEstimator(max_batch=4)
    for user in (1, 2, 3):
        await admit([job(submit, user=user, prompt=f"p{user}")])
    assert admit.waits.coming(10.0, NOW + 1) == 2  # three came in the last 10 s (the latest: the asker)


async def test_one_job_alone_is_no_album(bot):
    _, _, submit, announcer, admit = bot
    await admit([job(submit)], album=True)
    assert announcer.named("album") == []


async def test_a_request_over_the_limits_is_refused_and_nothing_is_kept(bot):
    queue, store, submit, announcer, admit = bot
    jobs = [job(submit, prompt=f"p{i}") for i in range(4)]  # max_in_flight is 3
    assert await admit(jobs, reply_to=9) == []
    assert announcer.calls == [("refused", 1, TooManyJobsInFlight.code, 9)]
    assert await store.active_jobs(1) == [] and await queued(queue) == []
    assert submit.in_flight == set()


async def test_the_same_message_admitted_again_is_ignored(bot):
    queue, _store, submit, announcer, admit = bot
    first = job(submit, job_id="m-1")
    assert len(await admit([first])) == 1
    assert await admit([job(submit, job_id="m-1")]) == []  # a restart handles the update again
    assert len(announcer.named("open")) == 1 and len(await queued(queue)) == 1
    assert announcer.named("refused") == [] and submit.in_flight == set()


async def test_a_queue_that_does_not_answer_leaves_the_job_to_the_outbox():
    queue = DownQueue()
    await queue.start()
    store = MemoryUserStore()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    announcer = Announcer()
    admit = AdmitJobs(submit, store, announcer, clock=lambda: NOW)
    [accepted] = await admit([submit.prepare(user_id=1, chat_id=1, prompt="fox")])  # accepted, not refused
    assert announcer.named("waiting") == [("waiting", accepted.job_id, 100)]
    assert [r.job_id for r in await store.unpublished(NOW + 60)] == [accepted.job_id]
    assert (await store.get_job(accepted.job_id)).state == JobState.QUEUED
    assert submit.in_flight == set()  # the outbox may publish it now


async def test_a_user_who_blocked_the_bot_gets_no_job(bot):
    queue, store, submit, announcer, admit = bot
    announcer.open_fails = RecipientGone
    assert await admit([job(submit)]) == []
    [record] = store.jobs.values()
    assert record.state == JobState.FAILED and record.error_code == "recipient_gone"
    assert await queued(queue) == [] and submit.in_flight == set()


async def test_a_status_that_cannot_be_sent_does_not_stop_the_job(bot):
    queue, store, submit, announcer, admit = bot
    announcer.open_fails = ConnectionError
    [accepted] = await admit([job(submit)])
    assert accepted.status_message_id is None
    assert (await store.get_job(accepted.job_id)).status_message_id is None
    assert [j.job_id for j in await queued(queue)] == [accepted.job_id]


async def test_a_status_recorded_after_the_result_came_is_withdrawn(bot):
    _queue, store, submit, announcer, admit = bot

    async def open_late(j, position, reply_to):  # the outbox of another bot was quicker
        await store.finish(j.job_id, Outcome(JobState.DONE, NOW + 1))
        return 321

    announcer.open_status = open_late
    [accepted] = await admit([job(submit)])
    assert announcer.named("withdraw") == [("withdraw", accepted.job_id, 321)]
    assert accepted.status_message_id == 321
    assert await queued(_queue) == []  # not published again: its result is in already
    assert submit.in_flight == set()


async def test_a_job_cancelled_while_its_status_was_on_the_way_is_withdrawn_once_and_not_queued(bot):
    queue, store, submit, announcer, admit = bot
    cancel = CancelJob(store, queue, announcer, clock=lambda: NOW + 1)

    async def open_late(j, position, reply_to):  # the reply waited out flood control; /cancel came
        [record] = await store.active_jobs(j.user_id)
        assert await cancel(record, j.user_id, Locale.EN) is True
        return 321

    announcer.open_status = open_late
    [accepted] = await admit([job(submit)])
    assert announcer.named("withdraw") == [("withdraw", accepted.job_id, 321)]
    assert announcer.named("cancelled") == []  # the status was not recorded yet when it was cancelled
    # Only the cancellation is queued: a worker would answer the job with a "cancelled" result,
    # whose delivery would end (delete) the withdrawn status a second time.
    assert [type(m).__name__ for m in await queued(queue)] == ["Cancel"]
    assert (await store.get_job(accepted.job_id)).state == JobState.CANCELLED
    assert await store.unpublished(NOW + 60) == [] and submit.in_flight == set()


async def test_a_status_recorded_in_time_is_kept(bot):
    _, _, submit, announcer, admit = bot
    await admit([job(submit)])
    assert announcer.named("withdraw") == []


async def test_cancelling_withdraws_the_job_once():
    queue = MemoryJobQueue()
    await queue.start()
    store = MemoryUserStore()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    announcer = Announcer()
    admit = AdmitJobs(submit, store, announcer, clock=lambda: NOW)
    cancel = CancelJob(store, queue, announcer, clock=lambda: NOW + 5)
    [accepted] = await admit([submit.prepare(user_id=1, chat_id=1, prompt="fox")])
    await queued(queue)
    record = await store.get_job(accepted.job_id)
    assert await cancel(record, 2, Locale.EN) is False  # someone else's
    assert await cancel(record, 1, Locale.RU) is True
    assert (await store.get_job(accepted.job_id)).state == JobState.CANCELLED
    [withdrawn] = await queued(queue)
    assert isinstance(withdrawn, Cancel) and (withdrawn.job_id, withdrawn.user_id) == (accepted.job_id, 1)
    assert announcer.named("close") == [("close", accepted.job_id)]
    assert announcer.named("cancelled") == [("cancelled", accepted.job_id, Locale.RU)]
    assert await cancel(record, 1, Locale.RU) is False  # already
    assert len(announcer.named("cancelled")) == 1


async def test_a_cancellation_the_queue_cannot_take_still_cancels():
    queue = DownQueue()
    store = MemoryUserStore()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    announcer = Announcer()
    await AdmitJobs(submit, store, announcer, clock=lambda: NOW)([submit.prepare(user_id=1, chat_id=1, prompt="x")])
    [record] = store.jobs.values()
    assert await CancelJob(store, queue, announcer, clock=lambda: NOW)(record, 1, Locale.EN) is True
    assert (await store.get_job(record.job_id)).state == JobState.CANCELLED


async def test_repeating_takes_new_seeds_and_keeps_the_rest(bot):
    _, _, submit, _, _ = bot
    original = job(submit, width=512, height=256, quality=Quality.QUALITY, negative_prompt="blur")
    record = JobRecord.from_job(original)
    seeds = iter([7, 7, 8, 8, 9, 10])  # the record's seed (7) and repeats are skipped
    jobs = repeat_jobs(
        submit,
        record,
        user_id=1,
        chat_id=1,
        locale=Locale.RU,
        count=3,
        translate=False,
        seed_source=lambda: next(seeds),
    )
    assert [j.seed for j in jobs] == [8, 9, 10]
    assert len({j.job_id for j in jobs}) == 3
    for j in jobs:
        assert (j.prompt, j.negative_prompt, j.width, j.height) == ("a red fox", "blur", 512, 256)
        assert j.quality == Quality.QUALITY and j.locale == Locale.RU and j.translate is False


# --- RecordOutcomes -------------------------------------------------------------------------


class Channel:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.unreachable: set[int] = set()
        self.send_raises: Exception | None = None

    def observed(self, event):
        self.calls.append(("observed", event.job_id))

    async def progress(self, event, record):
        self.calls.append(("progress", event.job_id, record.state))

    def arrived(self, result):
        self.calls.append(("arrived", result.job_id))

    def counted(self, result):
        self.calls.append(("counted", result.job_id))

    def dropped(self, job_id):
        self.calls.append(("dropped", job_id))

    def is_reachable(self, chat_id):
        return chat_id not in self.unreachable

    async def send(self, result, record, prefs, sent):
        self.calls.append(("send", result.job_id, record.job_id if record else None, prefs.send_as))
        if self.send_raises is not None:
            raise self.send_raises
        await sent()

    async def settle(self, result):
        self.calls.append(("settle", result.job_id))

    def sent(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "send"]


@pytest.fixture
async def delivery(bot):
    _queue, store, submit, _announcer, admit = bot
    channel = Channel()
    outcomes = RecordOutcomes(channel, store, clock=lambda: NOW + 9)
    [accepted] = await admit([job(submit, user=5)])
    return store, channel, outcomes, accepted


def done_result(j: Job) -> Result:
    return Result(
        job_id=j.job_id,
        user_id=j.user_id,
        chat_id=j.chat_id,
        locale=j.locale,
        status=JobStatus.DONE,
        prompt=j.prompt,
        seed=j.seed,
        width=j.width,
        height=j.height,
        image_key="k",
        image_url="u",
    )


async def test_a_result_finishes_its_job_and_is_sent(delivery):
    store, channel, outcomes, accepted = delivery
    confirmed = []

    async def sent():
        confirmed.append(True)

    await store.save_prefs(UserPrefs(5, send_as=SendAs.DOCUMENT))
    await outcomes.deliver(done_result(accepted), sent)
    assert channel.calls[:2] == [("arrived", accepted.job_id), ("counted", accepted.job_id)]
    assert channel.sent() == [accepted.job_id] and confirmed == [True]
    assert ("send", accepted.job_id, accepted.job_id, SendAs.DOCUMENT) in channel.calls  # its record, the prefs
    assert (await store.get_job(accepted.job_id)).state == JobState.DONE


async def test_a_cancelled_job_stays_cancelled_and_its_picture_is_dropped(delivery):
    store, channel, outcomes, accepted = delivery
    await store.cancel(accepted.job_id, 5, NOW + 1)
    await outcomes.deliver(done_result(accepted), _never)
    assert channel.sent() == [] and ("dropped", accepted.job_id) in channel.calls
    assert ("counted", accepted.job_id) not in channel.calls
    assert (await store.get_job(accepted.job_id)).state == JobState.CANCELLED


async def test_a_user_known_to_have_blocked_the_bot_is_not_sent_to(delivery):
    store, channel, outcomes, accepted = delivery
    await store.mark_blocked(5, NOW)
    with pytest.raises(RecipientGone):
        await outcomes.deliver(done_result(accepted), _never)
    assert channel.sent() == [] and ("dropped", accepted.job_id) in channel.calls
    assert (await store.get_job(accepted.job_id)).state == JobState.DONE  # recorded all the same


async def test_an_unreachable_chat_is_not_sent_to(delivery):
    _store, channel, outcomes, accepted = delivery
    channel.unreachable.add(5)
    with pytest.raises(RecipientGone):
        await outcomes.deliver(done_result(accepted), _never)
    assert channel.sent() == []


async def test_a_send_that_finds_the_bot_blocked_marks_the_user(delivery):
    store, channel, outcomes, accepted = delivery
    channel.send_raises = RecipientGone(chat_id=5)
    assert not await store.is_blocked(5)
    with pytest.raises(RecipientGone):
        await outcomes.deliver(done_result(accepted), _never)
    assert await store.is_blocked(5) and store.blocked[5] == NOW + 9


async def test_other_send_failures_pass_through_unrecorded_as_blocked(delivery):
    store, channel, outcomes, accepted = delivery
    channel.send_raises = ConnectionError("flaky")
    with pytest.raises(ConnectionError):
        await outcomes.deliver(done_result(accepted), _never)
    assert not await store.is_blocked(5)


async def test_progress_and_settling_go_to_the_channel(delivery):
    store, channel, outcomes, accepted = delivery
    started = Progress(job_id=accepted.job_id, user_id=5, chat_id=5, stage="started", worker_id="w1", at=NOW + 2)
    await outcomes.progress(started)
    await outcomes.settle(done_result(accepted))
    assert channel.calls == [
        ("observed", accepted.job_id),
        ("progress", accepted.job_id, JobState.RUNNING),  # marked running before it is shown
        ("settle", accepted.job_id),
    ]
    record = await store.get_job(accepted.job_id)
    assert record.state == JobState.RUNNING and record.started_at == NOW + 2 and record.worker_id == "w1"


async def test_progress_of_a_job_no_longer_active_is_only_observed(delivery):
    store, channel, outcomes, accepted = delivery
    await store.cancel(accepted.job_id, 5, NOW + 1)
    await outcomes.progress(Progress(job_id=accepted.job_id, user_id=5, chat_id=5, stage="started"))
    assert channel.calls == [("observed", accepted.job_id)]  # the estimates learn; its status stays
    assert (await store.get_job(accepted.job_id)).state == JobState.CANCELLED  # not made running


async def _never() -> None:
    raise AssertionError("nothing was sent")


async def test_admission_counts_accepted_prompts_and_times_the_first_reply(bot):
    """The objectives' numbers (docs/operations.md): each accepted prompt counts once, a refused
    request not at all; the first reply's time runs from the admission of the prompt to its status."""
    from adapters.otel.metrics import OtelMetrics

    _, _, submit, _, admit = bot
    metrics = OtelMetrics(system_metrics=False)
    admit.metrics = metrics
    ticks = itertools.chain([NOW], itertools.repeat(NOW + 0.3))  # admission starts, then 0.3 s pass
    admit.clock = lambda: next(ticks)
    assert len(await admit([job(submit, prompt=f"p{i}") for i in range(2)])) == 2
    assert await admit([job(submit, prompt=f"q{i}") for i in range(4)]) == []  # over the limit: refused
    exported = metrics.prometheus()[0].decode()
    samples = {line.split("{")[0]: line.rsplit(" ", 1)[1] for line in exported.splitlines() if "{" in line}
    assert samples["p2p_jobs_accepted_total"] == "2.0"
    assert samples["p2p_first_reply_seconds_count"] == "2.0"
    lines = exported.splitlines()
    (under,) = [line for line in lines if line.startswith('p2p_first_reply_seconds_bucket{le="0.25"')]
    (over,) = [line for line in lines if line.startswith('p2p_first_reply_seconds_bucket{le="0.5"')]
    assert under.endswith(" 0.0") and over.endswith(" 2.0")  # 0.3 s each
