"""The report button under a picture, and the admins' /ban and /unban."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from adapters.telegram.front import Front
from adapters.telegram.keyboards import ResultAction
from adapters.telegram.moderation import ban_command, report_picture
from domain.models import Locale


def router() -> Router:
    r = Router(name="moderation")

    @r.callback_query(ResultAction.filter(F.action == "rep"))
    async def on_report(query: CallbackQuery, callback_data: ResultAction, front: Front, locale: Locale) -> None:
        await report_picture(front, query, callback_data.job, locale)

    @r.message(Command("ban"))
    async def on_ban(message: Message, command: CommandObject, front: Front, locale: Locale) -> None:
        await ban_command(front, message, command.args, locale, ban=True)

    @r.message(Command("unban"))
    async def on_unban(message: Message, command: CommandObject, front: Front, locale: Locale) -> None:
        await ban_command(front, message, command.args, locale, ban=False)

    return r
