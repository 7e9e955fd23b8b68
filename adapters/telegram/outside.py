"""Messages that are not a chat's ordinary messages, through ``Sender``'s calls (its pacing and
retries): inline messages, addressed by their ``inline_message_id`` (the answer to a guest query,
Bot API 10.0, posted into a chat the bot may not be a member of), and ephemeral messages, seen by
one user in a group and addressed by their ``ephemeral_message_id`` (Bot API 10.2)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InputMediaPhoto

from adapters.telegram.sender import Priority, Sender

if TYPE_CHECKING:
    from aiogram.types import InlineQueryResultUnion

log = logging.getLogger(__name__)


class OutsideMessages:
    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.bot = sender.bot

    async def answer_guest(self, chat_id: int, query_id: str, result: InlineQueryResultUnion) -> str:
        """Answer a guest query with ``result``, posted into the chat: its inline message id.
        (Not paced as the chat's messages are: the chat may not be the bot's, and the answer
        is due at once.)"""
        sent = await self.sender.call(
            chat_id,
            lambda: self.bot.answer_guest_query(guest_query_id=query_id, result=result),
            priority=Priority.INTERACTIVE,
            paced=False,
            attempts=2,
        )
        return str(sent.inline_message_id)

    async def edit_inline_text(
        self,
        chat_id: int,
        inline_message_id: str,
        text: str,
        *,
        reply_markup: Any = None,
        priority: Priority = Priority.STATUS,
        attempts: int | None = None,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Edit an inline message's text (``chat_id``: the chat it is in, for pacing); False
        when Telegram refuses it (gone, or already says that)."""
        try:
            await self.sender.call(
                chat_id,
                lambda: self.bot.edit_message_text(
                    text=text[:4096], inline_message_id=inline_message_id, reply_markup=reply_markup
                ),
                priority=priority,
                attempts=attempts,
                on_sent=on_sent,
            )
            return True
        except TelegramBadRequest as exc:
            log.debug("edit of inline message %s skipped: %s", inline_message_id, exc.message)
            return False

    async def edit_inline_photo(
        self,
        chat_id: int,
        inline_message_id: str,
        file_id: str,
        *,
        caption: str,
        reply_markup: Any = None,
        has_spoiler: bool = False,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Turn an inline message into a photo the bot sent before (an inline message takes no
        new upload, only a file id or a URL); raises what Telegram refuses. ``has_spoiler``:
        blurred until tapped (a flagged picture)."""
        media = InputMediaPhoto(media=file_id, caption=caption[:1024] or None, has_spoiler=has_spoiler or None)
        await self.sender.call(
            chat_id,
            lambda: self.bot.edit_message_media(
                media=media, inline_message_id=inline_message_id, reply_markup=reply_markup
            ),
            priority=Priority.RESULT,
            on_sent=on_sent,
        )

    async def edit_ephemeral_text(
        self, chat_id: int, receiver: int, ephemeral_message_id: int, text: str, *, reply_markup: Any = None
    ) -> bool:
        """Edit an ephemeral message's text; False when Telegram refuses it."""
        try:
            await self.sender.call(
                chat_id,
                lambda: self.bot.edit_ephemeral_message_text(
                    chat_id=chat_id,
                    receiver_user_id=receiver,
                    ephemeral_message_id=ephemeral_message_id,
                    text=text[:4096],
                    reply_markup=reply_markup,
                ),
                priority=Priority.INTERACTIVE,
            )
            return True
        except TelegramBadRequest as exc:
            log.debug("edit of ephemeral %s/%s skipped: %s", chat_id, ephemeral_message_id, exc.message)
            return False
