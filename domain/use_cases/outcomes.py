"""What a result does to its job on delivery (bot side), before anything is sent: the job is
finished in the user store, a cancelled job stays cancelled (its result is dropped), a user who
blocked the bot is not sent to (and is marked when a send finds it out). What a progress event
does: the job is marked running when a worker starts it, and its live status shows it.

The events come here checked against their job's record and rebuilt from it (``VetEvents``):
their chat, user, status message, prompt, language and link are the record's."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.errors import RecipientGone
from domain.models import Progress, Result, Stage
from domain.ports import ResultChannel, UserStore
from domain.use_cases.credits import SpendCredits
from domain.users import JobState, Outcome

log = logging.getLogger(__name__)


@dataclass
class RecordOutcomes:
    """The ``OutcomeRecorder`` that ``DeliverResults`` calls: it records each outcome, then lets the
    chat adapter (``channel``) send what is to be sent."""

    channel: ResultChannel
    store: UserStore
    clock: Callable[[], float] = time.time
    # Credits bought with Stars: a paid job that ends without a picture (an honest error, too
    # many attempts, refused by the image check) or cancelled gives its credit back.
    credits: SpendCredits | None = None

    async def progress(self, event: object) -> None:
        """A worker's report: the wait estimates learn from it; a started job is marked
        running; an active job's live status shows it (a cancelled or finished job's status
        says so already)."""
        assert isinstance(event, Progress)  # DeliverResults hands on progress events only
        self.channel.observed(event)
        record = await self.store.get_job(event.job_id)
        if record is None or not record.active:
            return
        if event.stage == Stage.STARTED:
            record = await self.store.mark_started(event.job_id, event.at, event.worker_id) or record
        await self.channel.progress(event, record)

    async def deliver(self, result: Result, sent: Callable[[], Awaitable[None]]) -> None:
        """``RecipientGone``: the user cannot be reached (recorded; nothing is sent)."""
        self.channel.arrived(result)
        record = await self.store.get_job(result.job_id)
        was_cancelled = record is not None and record.state == JobState.CANCELLED
        finished = await self.store.finish(result.job_id, Outcome.from_result(result))
        if self.credits is not None:
            await self.credits.give_back(finished)
        if was_cancelled:
            self.channel.dropped(result.job_id)
            log.info("result %s dropped: the job was cancelled", result.job_id)
            return
        self.channel.counted(result)
        # (A guest job's chat is not the bot's, and its id may be another chat's: its picture goes
        # to its inline message, whoever blocked the bot in a chat of that id.)
        guest = record is not None and record.inline_message_id is not None
        if not guest and (not self.channel.is_reachable(result.chat_id) or await self.store.is_blocked(result.chat_id)):
            self.channel.dropped(result.job_id)
            raise RecipientGone(chat_id=result.chat_id)  # recorded above; nothing is sent
        prefs = await self.store.get_prefs(result.user_id)
        try:
            await self.channel.send(result, record, prefs, sent)
        except RecipientGone:
            if not guest:
                await self.store.mark_blocked(result.chat_id, self.clock())
            raise

    async def settle(self, result: Result) -> None:
        await self.channel.settle(result)
