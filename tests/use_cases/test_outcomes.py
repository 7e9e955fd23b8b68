"""What a result does to its job on delivery (RecordOutcomes), on the memory user store; the
chat side is a recording ResultChannel."""

from __future__ import annotations

import pytest

from domain.errors import RecipientGone
from domain.models import Job, JobStatus, Progress, Result
from domain.use_cases.outcomes import RecordOutcomes
from domain.users import JobState, SendAs, UserPrefs
from tests.use_cases.doubles import NOW, job


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
