"""The ``Announcer`` port in Telegram: the texts, keyboards and Bot API calls of admitting and
cancelling jobs (the use cases are ``AdmitJobs`` and ``CancelJob`` in the domain), and the
honest word when the outbox gave up on a job the queue never took."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from adapters.telegram.albums import Albums
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
    def __init__(self, sender: Sender, board: StatusBoard, albums: Albums, replies: Replies, texts: BotTexts) -> None:
        self.sender = sender
        self.board = board
        self.albums = albums
        self.replies = replies
        self.texts = texts
        self.t = texts.t

    def album(self, job_ids: Sequence[str]) -> None:
        self.albums.expect(list(job_ids))

    async def refused(self, job: Job, error: DomainError, reply_to: int | None) -> None:
        await self.replies.reply(job.chat_id, self.texts.error_text(job.locale, error), reply_to=reply_to)

    async def open_status(self, job: Job, position: int, reply_to: int | None) -> int | None:
        text = self.texts.queued_text(job.locale, job.prompt, position, job.lane)
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

    async def withdraw_status(self, job: Job, message_id: int) -> None:
        self.board.close(job.job_id)
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
        with contextlib.suppress(Exception):
            if record.status_message_id is not None and await self.sender.edit_text(
                record.chat_id,
                record.status_message_id,
                text,
                priority=Priority.RESULT,
            ):
                return
            await self.replies.reply(record.chat_id, text)
