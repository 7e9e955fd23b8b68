"""Runs before every handler: who the user is, in which language to answer, and whether they may
use the bot at all (the allowlist)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from adapters.telegram.front import Front
from adapters.telegram.moderation import tell_banned
from domain.models import Locale

log = logging.getLogger(__name__)


def telegram_locale(user: User | None) -> Locale:
    return Locale.from_language_code(user.language_code if user else None)


class UserContext(BaseMiddleware):
    """Puts ``prefs`` and ``locale`` into the handler data; turns away users not on the allowlist."""

    def __init__(self, front: Front) -> None:
        self.front = front

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or user.is_bot:
            return None
        front = self.front
        paste = None
        if isinstance(event, Message) and event.text:
            # before anything is awaited: the parts of a split paste are claimed in arrival order
            paste = front.paste.claim(event.chat.id, user.id, event.message_id, event.text)
            if paste is None:
                return None  # a later part of a long paste: handled with the first part
        prefs = await front.store.get_prefs(user.id)
        locale = prefs.locale or telegram_locale(user)
        if not front.is_allowed(user.id):
            log.info("user %s is not on the allowlist", user.id)
            text = front.t(locale, "error-access_denied", user_id=str(user.id))
            if isinstance(event, CallbackQuery):
                await front.answer(event, text, alert=True)
            elif isinstance(event, Message):
                await front.reply(event.chat.id, text)
            return None
        if prefs.banned and not front.is_admin(user.id):
            await tell_banned(front, event, locale, user.id)  # once; then they are ignored
            return None
        if prefs.blocked:
            await front.store.unblock(user.id)  # they write to us again: they unblocked the bot
        chat = (
            event.chat
            if isinstance(event, Message)
            else (event.message.chat if isinstance(event, CallbackQuery) and event.message else None)
        )
        if chat is not None:
            front.sender.reachable(chat.id)
            if chat.id != user.id and await front.store.is_blocked(chat.id):
                await front.store.unblock(chat.id)
        front.sender.reachable(user.id)
        data["prefs"] = prefs
        data["locale"] = locale
        # The first part of what may be a split paste (only a Message claims one).
        if paste is not None and paste.window_s and isinstance(event, Message):
            try:
                data["joined_text"] = await paste.joined()
            finally:
                front.paste.close(event.chat.id, user.id, paste)
        return await handler(event, data)
