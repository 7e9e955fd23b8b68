"""The one way out to Telegram: every message, edit, photo and document the bot sends goes
through ``Sender``, which keeps to Telegram's limits and survives its hiccups. It is a facade
over two parts:

- pacing (adapters/telegram/pacing.py): overall, at most ``rate`` calls in any window of
  ``window_s`` (Telegram allows about 30 messages a second; a sliding window, unlike a token
  bucket with a burst, never lets a restarted bot with a backlog of results go over it, not even
  for one second), waiting calls served by priority: replies to what a user just did first, then
  results (the oldest prompt first, see ``serving``), then live-status edits (which the status
  board coalesces anyway). Per chat: calls go one at a time, in the order they were made, the
  next no sooner than ``1/rate_per_chat`` seconds after the previous one *finished*; in groups
  (negative chat ids) no sooner than ``group_interval_s`` (Telegram allows 20 messages a
  minute). A handler whose call must wait long in the line (``hold_turn_s``: flood control, a
  long backlog) hands over its update's turn (adapters/telegram/turns.py).
- retrying (adapters/telegram/retrying.py): flood control waited out, network and server
  errors retried with backoff up to ``max_attempts``; a user who blocked the bot is recorded
  (``on_blocked``) and raised as ``domain.errors.RecipientGone``, and nothing more goes to that
  chat until ``reachable`` says the user wrote again; other errors are raised at once.

A message is deleted once: a second delete of it (another path that ends the same status) is not
sent, nor is an edit of a deleted message.

Several bot instances (webhook mode) share the limits through ``shared`` (a ``SharedPacing``, e.g.
``adapters.postgres.coordination``): it sets this instance's share of the overall rate
(``set_rate_limit``) and holds a chat across instances around each paced call.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    EphemeralMessageParameters,
    InputFile,
    InputMediaDocument,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)

from adapters.telegram.chat_actions import ChatActions
from adapters.telegram.pacing import Pacer, SharedPacing, serving
from adapters.telegram.rate_window import Priority
from adapters.telegram.retrying import BotCalls
from domain.errors import RecipientGone

if TYPE_CHECKING:
    from aiogram.types import MediaUnion

__all__ = ["Priority", "Sender"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _replying(message_id: int | None) -> dict[str, Any]:
    """The arguments that make a message answer ``message_id`` (if it is still there)."""
    if message_id is None:
        return {}
    return {"reply_parameters": ReplyParameters(message_id=message_id, allow_sending_without_reply=True)}


class Sender:
    def __init__(
        self,
        bot: Bot,
        *,
        rate: float = 30.0,
        window_s: float = 1.0,
        rate_per_chat: float = 1.0,
        group_interval_s: float = 3.0,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        on_blocked: Callable[[int], Awaitable[None]] | None = None,
        shared: SharedPacing | None = None,
        hold_turn_s: float = 10.0,
        remember_deleted: int = 10_000,
    ) -> None:
        self.bot = bot
        self.shared = shared
        self.pacer = Pacer(
            rate=rate,
            window_s=window_s,
            rate_per_chat=rate_per_chat,
            group_interval_s=group_interval_s,
            shared=shared,
            hold_turn_s=hold_turn_s,
        )
        # (its ``sent`` and ``retried`` counts are /stats'; its ``unreachable`` chats get nothing)
        self.calls = BotCalls(
            self.pacer,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            on_blocked=on_blocked,
        )
        self.call = self.calls.call
        self.reachable = self.calls.reachable  # the user wrote again: they unblocked the bot
        self.is_reachable = self.calls.is_reachable
        self.set_rate_limit = self.pacer.bucket.set_limit  # this instance's share of the budget
        self.serving = serving  # calls for a user waiting since then (oldest first)
        self.actions = ChatActions(self.calls, self.pacer.bucket, bot)
        self._deleted: OrderedDict[tuple[int, int], None] = OrderedDict()  # (chat, message), newest last
        self._remember_deleted = remember_deleted

    def close(self) -> None:
        self.pacer.bucket.close()

    # --- what the bot sends ------------------------------------------------------------------------
    async def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        reply_markup: Any = None,
        reply_to: int | None = None,
        priority: Priority = Priority.INTERACTIVE,
        on_sent: Callable[[], Awaitable[None]] | None = None,
        ephemeral_to: int | None = None,
    ) -> Message:
        kwargs: dict[str, Any] = {"reply_markup": reply_markup, **_replying(reply_to)}
        if ephemeral_to is not None:  # an ephemeral message: seen in the chat by that user only
            kwargs["ephemeral_message_parameters"] = EphemeralMessageParameters(receiver_user_id=ephemeral_to)
        return await self.call(
            chat_id,
            lambda: self.bot.send_message(chat_id, text[:4096], **kwargs),
            priority=priority,
            on_sent=on_sent,
        )

    async def edit_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        reply_markup: Any = None,
        priority: Priority = Priority.STATUS,
        attempts: int | None = None,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Edit a message's text; False when the message is gone or already says that."""
        if (chat_id, message_id) in self._deleted:
            log.debug("edit of %s/%s skipped: the message was deleted", chat_id, message_id)
            return False
        try:
            await self.call(
                chat_id,
                lambda: self.bot.edit_message_text(
                    text=text[:4096], chat_id=chat_id, message_id=message_id, reply_markup=reply_markup
                ),
                priority=priority,
                attempts=attempts,
                on_sent=on_sent,
            )
            return True
        except TelegramBadRequest as exc:
            log.debug("edit of %s/%s skipped: %s", chat_id, message_id, exc.message)
            return False

    async def send_photo(
        self,
        chat_id: int,
        photo: InputFile,
        *,
        caption: str,
        reply_markup: Any = None,
        reply_to: int | None = None,
        priority: Priority = Priority.RESULT,
        has_spoiler: bool = False,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> Message:
        """``has_spoiler``: Telegram blurs the photo until it is tapped (a flagged picture)."""
        kwargs: dict[str, Any] = _replying(reply_to)
        if has_spoiler:  # left out unless wanted, as clients do
            kwargs["has_spoiler"] = True
        return await self.call(
            chat_id,
            lambda: self.bot.send_photo(
                chat_id, photo, caption=caption[:1024] or None, reply_markup=reply_markup, **kwargs
            ),
            priority=priority,
            on_sent=on_sent,
        )

    async def send_album(
        self,
        chat_id: int,
        media: Sequence[InputMediaPhoto | InputMediaDocument],
        *,
        reply_to: int | None = None,
        priority: Priority = Priority.RESULT,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> list[Message]:
        """2-10 pictures as one album (no buttons: Telegram takes none on an album)."""
        kwargs: dict[str, Any] = _replying(reply_to)
        items: list[MediaUnion] = [*media]
        return await self.call(
            chat_id,
            lambda: self.bot.send_media_group(chat_id, items, **kwargs),
            priority=priority,
            on_sent=on_sent,
        )

    async def send_document(
        self,
        chat_id: int,
        document: InputFile,
        *,
        caption: str = "",
        reply_markup: Any = None,
        reply_to: int | None = None,
        priority: Priority = Priority.RESULT,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> Message:
        kwargs: dict[str, Any] = _replying(reply_to)
        return await self.call(
            chat_id,
            lambda: self.bot.send_document(
                chat_id,
                document,
                caption=caption[:1024] or None,
                reply_markup=reply_markup,
                disable_content_type_detection=True,
                **kwargs,
            ),
            priority=priority,
            on_sent=on_sent,
        )

    async def delete(self, chat_id: int, message_id: int) -> None:
        """Best effort: a message already gone is fine. Once per message: several paths may end
        one status (its result settled, a withdrawal, a delivery settled again), and Telegram
        refuses the second delete ("message to delete not found"). In the chat's line, after
        the calls to the chat made before it (an edit queued before never finds it gone)."""
        key = (chat_id, message_id)
        if key in self._deleted:
            return
        self._deleted[key] = None  # at once: a second delete while this one is on its way waits for nothing
        while len(self._deleted) > self._remember_deleted:
            self._deleted.popitem(last=False)
        try:
            await self.call(
                chat_id,
                lambda: self.bot.delete_message(chat_id, message_id),
                priority=Priority.STATUS,
                paced=False,
                in_line=True,
                attempts=2,
            )
        except (TelegramBadRequest, RecipientGone):
            pass  # gone already, too old to delete, or the user blocked the bot: no second try either
        except BaseException:
            self._deleted.pop(key, None)  # not known to be gone: a later delete may try again
            raise

    async def chat_action_once(self, chat_id: int, action: str) -> None:
        await self.actions.once(chat_id, action)

    def chat_action(self, chat_id: int, action: str, every_s: float = 4.5) -> AbstractAsyncContextManager[None]:
        return self.actions.showing(chat_id, action, every_s)
