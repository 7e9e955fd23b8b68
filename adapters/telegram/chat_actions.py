"""The chat actions ("sending a photo...") shown while the bot uploads: a courtesy that never
holds a message back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from adapters.telegram.rate_window import Priority, RateWindow
from adapters.telegram.retrying import BotCalls

if TYPE_CHECKING:
    from aiogram import Bot


class ChatActions:
    def __init__(self, calls: BotCalls, bucket: RateWindow, bot: Bot) -> None:
        self.calls = calls
        self.bucket = bucket
        self.bot = bot

    async def once(self, chat_id: int, action: str) -> None:
        """A courtesy ("sending a photo..."), sent only from spare budget: it never waits for a
        slot and so never holds a message back. (Queued like a message, the repeated actions of
        a few hundred deliveries waiting for the budget would eat it: 200 waiting deliveries
        repeat 44 actions a second, more than the whole budget.)"""
        if chat_id in self.calls.unreachable or not self.bucket.is_free():
            return
        bot = self.bot
        with contextlib.suppress(Exception):
            await self.calls.call(
                chat_id,
                lambda: bot.send_chat_action(chat_id, action),
                priority=Priority.STATUS,
                paced=False,
                attempts=1,
            )

    @contextlib.asynccontextmanager
    async def showing(self, chat_id: int, action: str, every_s: float = 4.5) -> AsyncIterator[None]:
        """Show ``action`` ("upload_photo"...) in the chat while the block runs (Telegram shows an
        action for 5 s or until the next message, so it is repeated)."""

        async def keep() -> None:
            while True:
                await asyncio.sleep(every_s)
                await self.once(chat_id, action)

        await self.once(chat_id, action)  # out before the upload starts
        task = asyncio.create_task(keep(), name=f"chat-action-{chat_id}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
