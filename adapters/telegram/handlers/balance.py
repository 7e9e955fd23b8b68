"""/balance: the lane of the user's next picture, their recent use, and the daily allowance."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from adapters.telegram.replies import Replies
from adapters.telegram.texts import BotTexts
from domain.models import Locale
from domain.use_cases.balance import ShowBalance


async def on_balance(message: Message, replies: Replies, texts: BotTexts, balance: ShowBalance, locale: Locale) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    shown = await balance(user_id)
    await replies.reply(message.chat.id, "\n".join(texts.balance_lines(locale, shown)))


def router() -> Router:
    r = Router(name="balance")
    r.message.register(on_balance, Command("balance"))
    return r
