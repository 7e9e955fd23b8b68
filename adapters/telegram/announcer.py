"""The ``Announcer`` port in Telegram: the texts, keyboards and Bot API calls of admitting and
cancelling jobs (the use cases are ``AdmitJobs`` and ``CancelJob`` in the domain)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from adapters.telegram.keyboards import cancel_keyboard, short
from adapters.telegram.sender import Priority
from domain.errors import DomainError, RecipientGone
from domain.models import Job, Locale
from domain.users import JobRecord

if TYPE_CHECKING:
    from adapters.telegram.front import Front

log = logging.getLogger(__name__)


class TelegramAnnouncer:
    def __init__(self, front: Front) -> None:
        self.front = front

    def album(self, job_ids: Sequence[str]) -> None:
        self.front.albums.expect(list(job_ids))

    async def refused(self, job: Job, error: DomainError, reply_to: int | None) -> None:
        await self.front.reply(job.chat_id, self.front.error_text(job.locale, error), reply_to=reply_to)

    async def open_status(self, job: Job, position: int, reply_to: int | None) -> int | None:
        front = self.front
        text = front.queued_text(job.locale, job.prompt, position)
        try:
            status = await front.sender.send_message(
                job.chat_id, text, reply_to=reply_to, reply_markup=cancel_keyboard(front.t, job.locale, job.job_id)
            )
        except RecipientGone:
            raise
        except Exception as exc:  # no status message: the job still goes ahead
            log.warning("status reply for %s failed: %s", job.job_id, type(exc).__name__)
            return None
        front.board.opened(job.job_id, job.chat_id, status.message_id, text, locale=job.locale, prompt=job.prompt)
        return int(status.message_id)

    async def withdraw_status(self, job: Job, message_id: int) -> None:
        self.front.board.close(job.job_id)
        await self.front.sender.delete(job.chat_id, message_id)

    async def waiting_for_service(self, job: Job) -> None:
        if job.status_message_id is None:
            return
        front = self.front
        with contextlib.suppress(Exception):
            await front.sender.edit_text(
                job.chat_id,
                job.status_message_id,
                front.t(job.locale, "status-waiting-service", prompt=short(job.prompt, 200)),
                reply_markup=cancel_keyboard(front.t, job.locale, job.job_id),
                priority=Priority.INTERACTIVE,
            )

    def close_status(self, job_id: str) -> None:
        self.front.board.close(job_id)

    async def cancelled(self, record: JobRecord, locale: Locale) -> None:
        if record.status_message_id is None:
            return
        with contextlib.suppress(Exception):
            await self.front.sender.edit_text(
                record.chat_id,
                record.status_message_id,
                self.front.t(locale, "status-cancelled", prompt=short(record.prompt, 200)),
                priority=Priority.INTERACTIVE,
            )
