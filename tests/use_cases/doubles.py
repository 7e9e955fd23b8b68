"""The chat side of the bot's use cases as a recording double, and the helpers the use case
tests share (tests/use_cases/conftest.py builds the bot from them)."""

from __future__ import annotations

import itertools

from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.user_store import MemoryUserStore
from domain.errors import DomainError, RecipientGone
from domain.models import Cancel, Job, Locale
from domain.use_cases import SubmitPrompt
from domain.users import JobRecord

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


async def queued(queue: MemoryJobQueue) -> list[Job | Cancel]:
    out = []
    for d in await queue.receive_jobs(100, 0.05):
        out.append(d.message)
        await d.ack()
    return out


def job(submit: SubmitPrompt, user: int = 1, prompt: str = "a red fox", **kw) -> Job:
    return submit.prepare(user_id=user, chat_id=user, prompt=prompt, **kw)
