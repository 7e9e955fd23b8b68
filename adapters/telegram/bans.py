"""Bans by the admins (``/ban``, ``/unban``): a banned user is told once, then ignored."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram.types import CallbackQuery, Message

from adapters.telegram.i18n import UiTexts
from adapters.telegram.options import BotOptions
from adapters.telegram.replies import Replies
from domain.errors import RecipientGone
from domain.models import Locale
from domain.ports import UserStore

log = logging.getLogger(__name__)


def parse_user_id(args: str | None) -> int | None:
    text = (args or "").strip().split()
    if len(text) != 1:
        return None
    try:
        value = int(text[0])
    except ValueError:
        return None
    return value if value > 0 else None


@dataclass
class Bans:
    replies: Replies
    t: UiTexts
    store: UserStore
    options: BotOptions
    clock: Callable[[], float] = field(default=time.time)

    async def tell_banned(self, event: Any, locale: Locale, user_id: int) -> None:
        """A banned user hears it once (the store makes sure, across messages and instances);
        after that their messages get no answer, and their buttons stop spinning silently."""
        first = await self.store.ban_noticed(user_id)
        text = self.t(locale, "banned-notice") if first else None
        if isinstance(event, CallbackQuery):
            await self.replies.answer(event, text, alert=bool(text))
        elif isinstance(event, Message) and text:
            await self.replies.reply(event.chat.id, text)
        if first:
            log.info("user %s is banned: told once", user_id)

    async def command(self, message: Message, args: str | None, locale: Locale, *, ban: bool) -> None:
        """/ban or /unban ``args`` (a user id), from an admin."""
        admin = message.from_user.id if message.from_user else 0
        command = "/ban" if ban else "/unban"
        if not self.options.is_admin(admin):
            await self.replies.reply(message.chat.id, self.t(locale, "error-admins_only_command", command=command))
            return
        user_id = parse_user_id(args)
        if user_id is None:
            await self.replies.reply(message.chat.id, self.t(locale, "ban-usage"))
            return
        if ban and self.options.is_admin(user_id):
            await self.replies.reply(message.chat.id, self.t(locale, "ban-admin", user_id=str(user_id)))
            return
        if ban:
            changed = await self.store.ban(user_id, self.clock())
            key = "ban-done" if changed else "ban-already"
        else:
            changed = await self.store.unban(user_id)
            key = "unban-done" if changed else "unban-not-banned"
        log.info(
            "admin %s %s user %s (%s)",
            admin,
            "banned" if ban else "unbanned",
            user_id,
            "changed" if changed else "no change",
        )
        with contextlib.suppress(RecipientGone):
            await self.replies.reply(message.chat.id, self.t(locale, key, user_id=str(user_id)))
