"""What no other handler took: unknown commands, stickers, photos, voice... In groups only
commands addressed to this bot get an answer (the rest of a group's talk is not for it). A button
press no other handler could read (an old release's button, data a modified client made up) is
answered too, or the button would spin until Telegram gives up."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from adapters.telegram.replies import Replies
from domain.models import Locale


async def on_unknown_command(message: Message, replies: Replies, locale: Locale) -> None:
    word = (message.text or "").split()[0]
    command, _, mention = word.partition("@")
    if message.chat.type != "private":
        me = await message.bot.me() if message.bot else None
        if not mention or me is None or mention.lower() != (me.username or "").lower():
            return
    text = replies.t(locale, "error-unknown_command", command=command)
    await replies.reply(message.chat.id, text, private_to=message.from_user.id if message.from_user else None)


async def on_other(message: Message, replies: Replies, locale: Locale) -> None:
    text = replies.t(locale, "error-not_text")
    await replies.reply(message.chat.id, text, private_to=message.from_user.id if message.from_user else None)


async def on_unknown_button(query: CallbackQuery, replies: Replies, locale: Locale) -> None:
    await replies.answer(query, replies.t(locale, "answer-button-dead"))


def router() -> Router:
    r = Router(name="fallback")
    r.message.register(on_unknown_command, F.text.startswith("/"))
    r.message.register(on_other, F.chat.type == "private")
    r.callback_query.register(on_unknown_button)
    return r
