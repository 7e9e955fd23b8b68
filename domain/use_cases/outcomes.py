"""What a result does to its job on delivery (bot side), before anything is sent: the job is
finished in the user store, a cancelled job stays cancelled (its result is dropped), a user who
blocked the bot is not sent to (and is marked when a send finds it out)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.errors import RecipientGone
from domain.models import Progress, Result
from domain.ports import ResultChannel
from domain.users import JobState, Outcome, UserStore

log = logging.getLogger(__name__)


@dataclass
class RecordOutcomes:
    """The ``Notifier`` that ``DeliverResults`` calls: it records each outcome, then lets the
    chat adapter (``channel``) send what is to be sent."""

    channel: ResultChannel
    store: UserStore
    clock: Callable[[], float] = time.time

    async def progress(self, event: object) -> None:
        assert isinstance(event, Progress)  # DeliverResults hands on progress events only
        await self.channel.progress(event)

    async def deliver(self, result: Result, sent: Callable[[], Awaitable[None]]) -> None:
        """``RecipientGone``: the user cannot be reached (recorded; nothing is sent)."""
        self.channel.arrived(result)
        record = await self.store.get_job(result.job_id)
        was_cancelled = record is not None and record.state == JobState.CANCELLED
        await self.store.finish(result.job_id, Outcome.from_result(result))
        if was_cancelled:
            self.channel.dropped(result.job_id)
            log.info("result %s dropped: the job was cancelled", result.job_id)
            return
        self.channel.counted(result)
        if not self.channel.is_reachable(result.chat_id) or await self.store.is_blocked(result.chat_id):
            self.channel.dropped(result.job_id)
            raise RecipientGone(chat_id=result.chat_id)  # recorded above; nothing is sent
        prefs = await self.store.get_prefs(result.user_id)
        try:
            await self.channel.send(result, record, prefs, sent)
        except RecipientGone:
            await self.store.mark_blocked(result.chat_id, self.clock())
            raise

    async def settle(self, result: Result) -> None:
        await self.channel.settle(result)
