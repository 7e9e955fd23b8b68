"""The command menu (``setMyCommands``): one list per language for everyone, the same plus /stats
in each admin's chat, and a chat's own list when a user picks a language in /settings."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from domain.models import Locale

if TYPE_CHECKING:
    from aiogram.types import BotCommandScopeUnion

    from adapters.telegram.front import Front

log = logging.getLogger(__name__)

COMMANDS = ("txt2img", "settings", "queue", "cancel", "history", "help", "start")
ADMIN_COMMANDS = ("stats", "ban", "unban")


def command_list(front: Front, locale: Locale, admin: bool = False) -> list[BotCommand]:
    names = COMMANDS + (ADMIN_COMMANDS if admin else ())
    return [BotCommand(command=name, description=front.t(locale, f"cmd-{name}")) for name in names]


async def _set(
    front: Front, commands: list[BotCommand], scope: BotCommandScopeUnion, language_code: str | None, chat_id: int = 0
) -> None:
    await front.sender.call(
        chat_id,
        lambda: front.sender.bot.set_my_commands(commands, scope=scope, language_code=language_code),
        paced=False,
    )


async def set_menus(front: Front) -> None:
    """Everyone's menus, per language (English is also the default for other languages)."""
    try:
        await _set(front, command_list(front, Locale.EN), BotCommandScopeDefault(), None)
        for locale in Locale:
            await _set(front, command_list(front, locale), BotCommandScopeDefault(), locale.value)
        for admin in sorted(front.config.admins):
            for locale in Locale:
                await _set(
                    front,
                    command_list(front, locale, admin=True),
                    BotCommandScopeChat(chat_id=admin),
                    locale.value,
                    admin,
                )
            await _set(
                front, command_list(front, Locale.EN, admin=True), BotCommandScopeChat(chat_id=admin), None, admin
            )
    except Exception as exc:  # the menu is a nicety: never stop the bot for it
        log.warning("setting the command menu failed: %s", type(exc).__name__)


async def set_chat_commands(front: Front, chat_id: int, locale: Locale | None, user_id: int) -> None:
    """After a language change in /settings: this chat's menu in that language, whatever the
    client's language (so every language variant of the chat scope is set); no language: back to
    the per-language menus."""
    scope = BotCommandScopeChat(chat_id=chat_id)
    admin = front.is_admin(user_id)
    try:
        for code in (None, *(lang.value for lang in Locale)):
            if locale is not None:
                await _set(front, command_list(front, locale, admin=admin), scope, code, chat_id)
            elif admin:
                shown = Locale(code) if code else Locale.EN
                await _set(front, command_list(front, shown, admin=True), scope, code, chat_id)
            else:
                await front.sender.call(
                    chat_id,
                    functools.partial(front.sender.bot.delete_my_commands, scope=scope, language_code=code),
                    paced=False,
                )
    except Exception as exc:
        log.warning("setting the menu of chat %s failed: %s", chat_id, type(exc).__name__)
