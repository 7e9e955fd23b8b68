"""What no other handler took: unknown commands, stickers, photos, voice... In groups only
commands addressed to this bot get an answer (the rest of a group's talk is not for it). A button
press no other handler could read (an old release's button, data a modified client made up) is
answered too, or the button would spin until Telegram gives up."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from adapters.telegram.front import Front
from domain.models import Locale


def router() -> Router:
    r = Router(name="fallback")

    @r.message(F.text.startswith("/"))
    async def on_unknown_command(message: Message, front: Front, locale: Locale) -> None:
        word = (message.text or "").split()[0]
        command, _, mention = word.partition("@")
        if message.chat.type != "private":
            me = await message.bot.me() if message.bot else None
            if not mention or me is None or mention.lower() != (me.username or "").lower():
                return
        await front.reply(message.chat.id, front.t(locale, "error-unknown_command", command=command))

    @r.message(F.chat.type == "private")
    async def on_other(message: Message, front: Front, locale: Locale) -> None:
        await front.reply(message.chat.id, front.t(locale, "error-not_text"))

    @r.callback_query()
    async def on_unknown_button(query: CallbackQuery, front: Front, locale: Locale) -> None:
        await front.answer(query, front.t(locale, "answer-button-dead"))

    return r
