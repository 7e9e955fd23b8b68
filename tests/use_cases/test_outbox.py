"""The outbox (PublishOutbox): what was recorded and never published reaches the queue once,
and what waited too long expires honestly."""

from __future__ import annotations

from adapters.embedded.queue import MemoryJobQueue
from domain.use_cases import PublishOutbox, SubmitPrompt
from domain.users import JobRecord, UserLimits


class FlakyQueue(MemoryJobQueue):
    """A queue whose publish of jobs times out while ``down``."""

    down = False

    async def publish_job(self, job):
        if self.down:
            raise TimeoutError()
        await super().publish_job(job)

    def is_ready(self):
        return not self.down


async def test_the_outbox_publishes_what_was_recorded_and_never_confirmed():
    from adapters.embedded.user_store import MemoryUserStore

    queue, store = FlakyQueue(), MemoryUserStore()
    submit = SubmitPrompt(queue)
    now = [1000.0]
    outbox = PublishOutbox(queue, store, submit, min_age_s=3, expiry_s=600, clock=lambda: now[0])
    job = submit.prepare(user_id=1, chat_id=1, prompt="kept through a crash")
    job = job.model_copy(update={"created_at": now[0]})
    await store.admit([JobRecord.from_job(job)], UserLimits(), now[0])  # then the bot died
    assert await outbox.run_once() == 0  # too young: the front may still be publishing it
    now[0] += 5
    queue.down = True
    assert await outbox.run_once() == 0  # nothing tried while the queue is down
    queue.down = False
    assert await outbox.run_once() == 1
    [d] = await queue.receive_jobs(10, 0.1)
    assert d.message.job_id == job.job_id and d.message.prompt == job.prompt
    assert await outbox.run_once() == 0  # published once
    expired: list[str] = []
    outbox.on_expired = lambda r: _record(expired, r.job_id)
    late = submit.prepare(user_id=2, chat_id=2, prompt="never reached the queue")
    late = late.model_copy(update={"created_at": now[0] - 700})
    await store.admit([JobRecord.from_job(late)], UserLimits(), now[0])
    queue.down = True
    await outbox.run_once()
    assert expired == [late.job_id]
    assert (await store.get_job(late.job_id)).error_code == "queue_unavailable"


async def _record(into: list[str], value: str) -> None:
    into.append(value)
