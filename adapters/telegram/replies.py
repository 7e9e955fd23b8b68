"""Answering a user: a message in the chat, the answer to a pressed button, and the check that
the one who pressed a job's button may act on that job."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery

from adapters.telegram.i18n import UiTexts
from adapters.telegram.sender import Sender
from domain.errors import RecipientGone
from domain.models import Locale
from domain.ports import UserStore
from domain.users import JobRecord

log = logging.getLogger(__name__)


@dataclass
class Replies:
    sender: Sender
    t: UiTexts
    store: UserStore

    async def reply(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        markup: Any = None,
        private_to: int | None = None,
    ) -> None:
        """Answer in the chat; a user who blocked the bot, or an answer Telegram refuses, is
        logged, never raised into the handler (which would leave the update half done).
        ``private_to``: what concerns that user only; in a group it goes as an ephemeral message
        that only they see (``private``), in the chat as before where Telegram refuses that."""
        if await self.private(chat_id, private_to, text, reply_to=reply_to, markup=markup):
            return
        try:
            await self.sender.send_message(chat_id, text, reply_to=reply_to, reply_markup=markup)
        except RecipientGone:
            pass
        except TelegramBadRequest as exc:
            log.warning("a reply to chat %s was refused: %s", chat_id, exc.message)

    async def private(
        self, chat_id: int, user_id: int | None, text: str, *, reply_to: int | None = None, markup: Any = None
    ) -> bool:
        """An ephemeral message to ``user_id`` in group ``chat_id`` (Bot API 10.2); False when it
        is no group (a private chat is private already), or Telegram refused it (the user is not
        in the chat, the chat takes none, an older server): the caller then answers in the chat."""
        if user_id is None or chat_id >= 0:
            return False
        try:
            await self.sender.send_message(chat_id, text, reply_to=reply_to, reply_markup=markup, ephemeral_to=user_id)
        except RecipientGone:
            return True  # the group is gone for the bot: nothing else would get there either
        except TelegramBadRequest as exc:
            log.info("an ephemeral reply in chat %s was refused (%s): it goes to the chat", chat_id, exc.message)
            return False
        return True

    @staticmethod
    async def answer(query: Any, text: str | None = None, *, alert: bool = False) -> None:
        """Answer a callback query at once; a query too old to answer does not stop the work."""
        with contextlib.suppress(Exception):
            await query.answer(text, show_alert=alert)

    async def job_for_button(
        self, query: CallbackQuery, job_id: str, locale: Locale, *, owner_only: bool = False
    ) -> JobRecord | None:
        """The job a button names, when the one who pressed it may act on it: its owner, or
        (not with ``owner_only``) a member of the group it was made in (``JobRecord.reachable_by``).
        Otherwise the query is answered here, politely and once, and None comes back: the
        handler then touches nothing. Callback data is whatever a client sends, so the job id
        in it proves nothing; the record decides."""
        record = await self.store.get_job(job_id)
        user_id = query.from_user.id
        chat_id = query.message.chat.id if query.message else None
        if record is None:
            await self.answer(query, self.t(locale, "answer-job-forgotten"))
            return None
        if not (record.owned_by(user_id) if owner_only else record.reachable_by(user_id, chat_id)):
            log.info("user %s pressed a button of job %s, which is not theirs", user_id, job_id)
            await self.answer(query, self.t(locale, "answer-not-yours"))
            return None
        return record
