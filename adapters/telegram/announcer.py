"""The ``Announcer`` port in Telegram: the texts, keyboards and Bot API calls of admitting and
cancelling jobs (the use cases are ``AdmitJobs`` and ``CancelJob`` in the domain), and the
honest word when the outbox gave up on a job the queue never took. A job asked for in guest mode
(``guests.GuestAnswers``) has its status posted as the answer to its guest query, an inline
message edited by its id; anything else goes to the job's chat."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from adapters.telegram.albums import Albums
from adapters.telegram.guests import GuestAnswers
from adapters.telegram.keyboards import cancel_keyboard, short
from adapters.telegram.replies import Replies
from adapters.telegram.sender import Priority, Sender
from adapters.telegram.status import StatusBoard
from adapters.telegram.texts import BotTexts
from domain.errors import DomainError, QueueUnavailable, RecipientGone
from domain.models import Job, Locale
from domain.users import JobRecord

log = logging.getLogger(__name__)


class TelegramAnnouncer:
    def __init__(
        self,
        sender: Sender,
        board: StatusBoard,
        albums: Albums,
        replies: Replies,
        texts: BotTexts,
        guests: GuestAnswers,
    ) -> None:
        self.sender = sender
        self.guests = guests
        self.outside = guests.outside
        self.board = board
        self.albums = albums
        self.replies = replies
        self.texts = texts
        self.t = texts.t

    def album(self, job_ids: Sequence[str]) -> None:
        self.albums.expect(list(job_ids))

    async def refused(self, job: Job, error: DomainError, reply_to: int | None) -> None:
        text = self.texts.error_text(job.locale, error)
        query = self.guests.take(job.job_id)
        if query is not None:  # the answer to the guest query, the one way into that chat
            await self.guests.refuse(job.chat_id, query, text, job.locale)
            return
        await self.replies.reply(job.chat_id, text, reply_to=reply_to, private_to=job.user_id)

    async def open_status(self, job: Job, position: int, reply_to: int | None) -> int | str | None:
        text = self.texts.queued_text(job.locale, job.prompt, position, job.lane)
        query = self.guests.take(job.job_id)
        if query is not None:
            return await self._answer_guest(job, query, text)
        try:
            status = await self.sender.send_message(
                job.chat_id, text, reply_to=reply_to, reply_markup=cancel_keyboard(self.t, job.locale, job.job_id)
            )
        except RecipientGone:
            raise
        except Exception as exc:  # no status message: the job still goes ahead
            log.warning("status reply for %s failed: %s", job.job_id, type(exc).__name__)
            return None
        self.board.opened(job.job_id, job.chat_id, status.message_id, text, locale=job.locale, prompt=job.prompt)
        return int(status.message_id)

    async def _answer_guest(self, job: Job, query_id: str, text: str) -> str:
        """The status as the answer to the guest query: its inline message id. Not posted (too
        late, answered already): the picture would have nowhere to go, so nobody to draw for."""
        markup = cancel_keyboard(self.t, job.locale, job.job_id)
        try:
            inline_id = await self.guests.post(
                job.chat_id, query_id, text, job.locale, result_id=job.job_id, markup=markup
            )
        except Exception as exc:
            log.warning("guest status for %s not posted: %s", job.job_id, type(exc).__name__)
            raise RecipientGone(chat_id=job.chat_id) from exc
        self.board.opened(job.job_id, job.chat_id, 0, text, locale=job.locale, prompt=job.prompt, inline_id=inline_id)
        return inline_id

    async def withdraw_status(self, job: Job, message_id: int | str) -> None:
        self.board.close(job.job_id)
        if isinstance(message_id, str):  # an inline message cannot be deleted: it says it ended
            text = self.t(job.locale, "status-cancelled", prompt=short(job.prompt, 200))
            await self.outside.edit_inline_text(job.chat_id, message_id, text, priority=Priority.INTERACTIVE)
            return
        await self.sender.delete(job.chat_id, message_id)

    async def waiting_for_service(self, job: Job) -> None:
        if job.status_message_id is None:
            return
        with contextlib.suppress(Exception):
            await self.sender.edit_text(
                job.chat_id,
                job.status_message_id,
                self.t(job.locale, "status-waiting-service", prompt=short(job.prompt, 200)),
                reply_markup=cancel_keyboard(self.t, job.locale, job.job_id),
                priority=Priority.INTERACTIVE,
            )

    def close_status(self, job_id: str) -> None:
        self.board.close(job_id)

    async def cancelled(self, record: JobRecord, locale: Locale) -> None:
        if record.inline_message_id is not None:
            text = self.t(locale, "status-cancelled", prompt=short(record.prompt, 200))
            await self.outside.edit_inline_text(
                record.chat_id, record.inline_message_id, text, priority=Priority.INTERACTIVE
            )
            return
        if record.status_message_id is None:
            return
        with contextlib.suppress(Exception):
            await self.sender.edit_text(
                record.chat_id,
                record.status_message_id,
                self.t(locale, "status-cancelled", prompt=short(record.prompt, 200)),
                priority=Priority.INTERACTIVE,
            )

    async def never_queued(self, record: JobRecord) -> None:
        """The outbox gave up on a job the queue never took: the user hears it honestly."""
        self.board.close(record.job_id)
        text = self.texts.error_text(record.locale, QueueUnavailable(job_id=record.job_id))
        if record.inline_message_id is not None:
            await self.outside.edit_inline_text(
                record.chat_id, record.inline_message_id, text, priority=Priority.RESULT
            )
            return
        with contextlib.suppress(Exception):
            if record.status_message_id is not None and await self.sender.edit_text(
                record.chat_id,
                record.status_message_id,
                text,
                priority=Priority.RESULT,
            ):
                return
            await self.replies.reply(record.chat_id, text)
