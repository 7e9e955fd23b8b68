"""The admins' /ban and /unban (the Report button under a picture is in buttons.py)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.bans import Bans
from domain.models import Locale


async def on_ban(message: Message, command: CommandObject, bans: Bans, locale: Locale) -> None:
    await bans.command(message, command.args, locale, ban=True)


async def on_unban(message: Message, command: CommandObject, bans: Bans, locale: Locale) -> None:
    await bans.command(message, command.args, locale, ban=False)


def router() -> Router:
    r = Router(name="bans")
    r.message.register(on_ban, Command("ban"))
    r.message.register(on_unban, Command("unban"))
    return r
