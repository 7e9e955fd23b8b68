"""What no other handler took: unknown commands, stickers, photos, voice..."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from adapters.telegram.front import Front
from domain.models import Locale


def router() -> Router:
    r = Router(name="fallback")

    @r.message(F.text.startswith("/"))
    async def on_unknown_command(message: Message, front: Front, locale: Locale) -> None:
        command = (message.text or "").split()[0].split("@")[0]
        await front.reply(message.chat.id, front.t(locale, "error-unknown_command", command=command))

    @r.message()
    async def on_other(message: Message, front: Front, locale: Locale) -> None:
        await front.reply(message.chat.id, front.t(locale, "error-not_text"))

    return r
