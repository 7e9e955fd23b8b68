"""Users' reports of pictures: the Report button under a picture sends it, with who reported
it, the prompt and the command to ban them, to the admins' chat (``ADMIN_CHAT_ID``) or to every
admin's own chat. (The worker's safety step is another thing: domain/safety_gate.py.)"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import BufferedInputFile, CallbackQuery, User

from adapters.telegram.i18n import UiTexts
from adapters.telegram.keyboards import short
from adapters.telegram.options import BotOptions
from adapters.telegram.replies import Replies
from adapters.telegram.sender import Priority, Sender
from domain.models import Locale
from domain.ports import Storage, UserStore
from domain.safety import SafetyTally

log = logging.getLogger(__name__)


def _who(user: User) -> str:
    name = " ".join(part for part in (user.first_name, user.last_name) if part) or "?"
    return f"{name} (@{user.username})" if user.username else name


@dataclass
class Reports:
    replies: Replies
    sender: Sender
    t: UiTexts
    store: UserStore
    storage: Storage
    options: BotOptions
    safety: SafetyTally

    def targets(self) -> list[int]:
        """Where reports go: ADMIN_CHAT_ID, or every admin's own chat."""
        if self.options.admin_chat_id:
            return [self.options.admin_chat_id]
        return sorted(self.options.admins)

    async def report_picture(self, query: CallbackQuery, job_id: str, locale: Locale) -> None:
        """A user's report of a picture: answered at once, then the picture goes to the admins with
        who reported it, the prompt and the command to ban them."""
        user = query.from_user
        record = await self.replies.job_for_button(query, job_id, locale)  # the owner's, or a group's own
        if record is None:
            return  # answered: forgotten, or not this user's to report
        if not record.image_key:
            await self.replies.answer(query, self.t(locale, "answer-report-gone"))
            return
        targets = self.targets()
        if not targets:  # an old button: no Report button is shown while nobody receives reports
            log.warning("a report of job %s has nowhere to go: set ADMIN_IDS or ADMIN_CHAT_ID", job_id)
            await self.replies.answer(query, self.t(locale, "answer-report-nobody"))
            return
        if not self.safety.reported(job_id):
            await self.replies.answer(query, self.t(locale, "answer-report-again"))
            return
        await self.replies.answer(query, self.t(locale, "answer-report"))
        try:
            png = await self.storage.get(record.image_key)
        except Exception as exc:
            log.warning("the reported picture of %s cannot be read: %s", job_id, type(exc).__name__)
            png = None
        for chat_id in targets:
            prefs = await self.store.get_prefs(chat_id)
            admin_locale = prefs.locale or Locale.EN
            text = self.t(
                admin_locale,
                "report-admin",
                name=_who(user),
                user_id=str(user.id),
                job_id=job_id,
                prompt=short(record.prompt, 600),
            )
            try:
                await self._send_report(chat_id, text, png, job_id)
            except Exception as exc:  # one unreachable admin does not stop the others
                log.warning("report of %s not delivered to chat %s: %s", job_id, chat_id, type(exc).__name__)
        log.info("user %s reported job %s to %d chat(s)", user.id, job_id, len(targets))

    async def _send_report(self, chat_id: int, text: str, png: bytes | None, job_id: str) -> None:
        if png is None:
            await self.sender.send_message(chat_id, text, priority=Priority.INTERACTIVE)
            return
        upload = BufferedInputFile(png, filename=f"report-{job_id[:12]}.png")
        try:  # behind a spoiler: an admin chat may be open on a shared screen
            await self.sender.send_photo(chat_id, upload, caption=text, has_spoiler=True, priority=Priority.INTERACTIVE)
        except (TelegramBadRequest, TelegramEntityTooLarge):
            await self.sender.send_document(chat_id, upload, caption=text, priority=Priority.INTERACTIVE)
