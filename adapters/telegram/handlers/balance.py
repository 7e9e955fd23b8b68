"""/balance: the lane of the user's next picture, their recent use, the daily allowance, and
the credits bought with Stars (PAYMENTS=stars). In a group only its user sees it."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from adapters.telegram.payments import Payments
from adapters.telegram.replies import Replies
from adapters.telegram.texts import BotTexts
from domain.models import Locale
from domain.use_cases.balance import ShowBalance


async def on_balance(
    message: Message,
    replies: Replies,
    texts: BotTexts,
    balance: ShowBalance,
    locale: Locale,
    payments: Payments | None = None,
) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    lines = texts.balance_lines(locale, await balance(user_id))
    if payments is not None:
        lines.append(await payments.balance_text(user_id, locale))
    await replies.reply(message.chat.id, "\n".join(lines), private_to=user_id)


def router() -> Router:
    r = Router(name="balance")
    r.message.register(on_balance, Command("balance"))
    return r
