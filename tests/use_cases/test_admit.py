"""Admitting prompts (AdmitJobs), cancelling (CancelJob) and repeating with new seeds
(repeat_jobs), on the memory adapters; the chat side is a recording Announcer."""

from __future__ import annotations

import itertools

from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.user_store import MemoryUserStore
from domain.errors import RecipientGone
from domain.models import Cancel, Locale, Quality
from domain.use_cases import SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob, repeat_jobs
from domain.users import JobRecord, JobState, Outcome, TooManyJobsInFlight
from domain.waits import WaitEstimator
from tests.use_cases.doubles import NOW, Announcer, DownQueue, job, queued


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


class GuestAnnouncer(Announcer):
    """Posts every status as the answer to a guest query: an inline message id (a str)."""

    async def open_status(self, job, position, reply_to):
        self.calls.append(("open", job.job_id, position, reply_to))
        return f"inline-{job.job_id[:6]}"


async def test_a_status_posted_as_an_inline_message_is_recorded_by_its_id_and_cancelled_there():
    queue = MemoryJobQueue()
    await queue.start()
    store = MemoryUserStore()
    submit = SubmitPrompt(queue, default_width=256, default_height=256)
    announcer = GuestAnnouncer()
    admit = AdmitJobs(submit, store, announcer, clock=lambda: NOW)
    [accepted] = await admit([submit.prepare(user_id=1, chat_id=-880, prompt="fox")])
    record = await store.get_job(accepted.job_id)
    assert record.inline_message_id == f"inline-{accepted.job_id[:6]}"
    assert record.status_message_id is None and accepted.status_message_id is None  # no chat message
    assert [j.job_id for j in await queued(queue)] == [accepted.job_id]
    assert await CancelJob(store, queue, announcer, clock=lambda: NOW + 5)(record, 1, Locale.EN) is True
    assert announcer.named("cancelled") == [("cancelled", accepted.job_id, Locale.EN)]  # the inline status says it


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
