"""Prompts: /txt2img <prompt> and plain text."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.front import Front
from domain.models import Locale
from domain.users import UserPrefs


def router() -> Router:
    r = Router(name="prompts")

    async def accept(message: Message, front: Front, locale: Locale, prefs: UserPrefs, text: str) -> None:
        user_id = message.from_user.id if message.from_user else message.chat.id
        await front.accept_text(
            user_id=user_id, chat_id=message.chat.id, locale=locale, prefs=prefs, text=text,
            reply_to=message.message_id,
        )

    @r.message(Command("txt2img"))
    async def on_txt2img(message: Message, command: CommandObject, front: Front, locale: Locale, prefs: UserPrefs) -> None:
        await accept(message, front, locale, prefs, command.args or "")

    @r.message(F.text & ~F.text.startswith("/"))
    async def on_text(message: Message, front: Front, locale: Locale, prefs: UserPrefs) -> None:
        await accept(message, front, locale, prefs, message.text or "")

    return r
