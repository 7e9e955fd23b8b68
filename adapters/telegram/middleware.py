"""Runs before every handler: one chat's updates one after the other (``InOrder``); who the
user is, in which language to answer, and whether they may use the bot at all (``UserContext``,
the allowlist)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User

from adapters.telegram.bans import Bans
from adapters.telegram.guests import GuestAnswers
from adapters.telegram.options import BotOptions
from adapters.telegram.paste import Paste, SplitPaste
from adapters.telegram.replies import Replies
from adapters.telegram.sender import Sender
from adapters.telegram.turns import ChatTurns
from domain.models import Locale
from domain.ports import UserStore

log = logging.getLogger(__name__)


def telegram_locale(user: User | None) -> Locale:
    return Locale.from_language_code(user.language_code if user else None)


class InOrder(BaseMiddleware):
    """One chat's updates are handled in the order they came, one after the other (the turns of
    adapters/telegram/turns.py); other chats' at the same time. So what the bot sends in answer
    (status replies, command replies, status edits and deletions) goes out in the order the user
    sent the messages, and a command sees what the messages before it did (/queue lists the
    prompts sent before it, /cancel cancels them).

    Installed before aiogram's own update middlewares (``install``): an update that fails is
    answered (handlers/errors.py) in its turn too. The parts of a long paste split by the client
    are claimed here, before the turn is waited for: the first part's handler holds the turn
    while it waits for the next part, and the next part must not wait for that turn."""

    def __init__(self, paste: SplitPaste, turns: ChatTurns | None = None) -> None:
        self.paste = paste
        self.turns = turns or ChatTurns()

    def install(self, dispatcher: Dispatcher) -> None:
        """Put this middleware first, around aiogram's errors and user-context middlewares."""
        manager = dispatcher.update.outer_middleware
        builtin = list(manager)
        for middleware in builtin:
            manager.unregister(middleware)
        manager.register(self)
        for middleware in builtin:
            manager.register(middleware)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        # Nothing is awaited before the turn is taken: updates are handled on tasks started in
        # the order they came, so turns (and paste parts) are taken in that order.
        if not isinstance(event, Update):  # (an update middleware gets updates only)
            return await handler(event, data)
        context = UserContextMiddleware.resolve_event_context(event)
        if context.chat is None:  # inline queries: no chat to keep in order
            return await handler(event, data)
        user, message = context.user, event.message
        if message is not None and message.text and user is not None and not user.is_bot:
            paste = self.paste.claim(message.chat.id, user.id, message.message_id, message.text)
            if paste is None:
                return None  # a later part of a long paste: handled with the first part
            data["paste"] = paste
        async with self.turns.take(context.chat.id).held():
            return await handler(event, data)


class UserContext(BaseMiddleware):
    """Puts ``prefs`` and ``locale`` into the handler data; turns away users not on the allowlist."""

    def __init__(
        self,
        *,
        store: UserStore,
        options: BotOptions,
        replies: Replies,
        bans: Bans,
        sender: Sender,
        paste: SplitPaste,
        guests: GuestAnswers,
    ) -> None:
        self.guests = guests
        self.store = store
        self.options = options
        self.replies = replies
        self.bans = bans
        self.sender = sender
        self.paste = paste

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or user.is_bot:
            return None
        paste: Paste | None = data.get("paste")  # claimed by InOrder
        prefs = await self.store.get_prefs(user.id)
        locale = prefs.locale or telegram_locale(user)
        guest = isinstance(event, Message) and event.guest_query_id is not None
        refused = not self.options.is_allowed(user.id) or (prefs.banned and not self.options.is_admin(user.id))
        if guest and refused:  # a short refusal, as the answer to the query (the way into that chat)
            assert isinstance(event, Message) and event.guest_query_id is not None
            log.info("a guest query of user %s refused (not allowed, or banned)", user.id)
            await self.guests.refuse(
                event.chat.id, event.guest_query_id, self.replies.t(locale, "guest-refused"), locale
            )
            return None
        # A successful payment is credited whoever it is from (the Stars are paid already): a
        # user banned, or taken off the allowlist, after the pre-checkout still gets the credits.
        paying = isinstance(event, Message) and event.successful_payment is not None
        if not self.options.is_allowed(user.id) and not paying:
            log.info("user %s is not on the allowlist", user.id)
            text = self.replies.t(locale, "error-access_denied", user_id=str(user.id))
            if isinstance(event, CallbackQuery):
                await self.replies.answer(event, text, alert=True)
            elif isinstance(event, Message):
                await self.replies.reply(event.chat.id, text, private_to=user.id)
            return None
        if prefs.banned and not self.options.is_admin(user.id) and not paying:
            await self.bans.tell_banned(event, locale, user.id)  # once; then they are ignored
            return None
        if prefs.blocked:
            await self.store.unblock(user.id)  # they write to us again: they unblocked the bot
        chat = (
            event.chat
            if isinstance(event, Message)
            else (event.message.chat if isinstance(event, CallbackQuery) and event.message else None)
        )
        if chat is not None:
            self.sender.reachable(chat.id)  # (a guest query's too: its answer and edits go by that id)
            # A guest query's chat is not the bot's, and its id may be another chat's (a private
            # chat's is the other user's id): nobody in it wrote to the bot.
            if not guest and chat.id != user.id and await self.store.is_blocked(chat.id):
                await self.store.unblock(chat.id)
        self.sender.reachable(user.id)
        data["prefs"] = prefs
        data["locale"] = locale
        # The first part of what may be a split paste (only a Message claims one).
        if paste is not None and paste.window_s and isinstance(event, Message):
            try:
                data["joined_text"] = await paste.joined()
            finally:
                self.paste.close(event.chat.id, user.id, paste)
        return await handler(event, data)
