"""The command menu (``setMyCommands``): one list per language for everyone, the same plus /stats
in each admin's chat, and a chat's own list when a user picks a language in /settings."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from adapters.telegram.i18n import UiTexts
from adapters.telegram.options import BotOptions
from adapters.telegram.sender import Sender
from domain.models import Locale

if TYPE_CHECKING:
    from aiogram.types import BotCommandScopeUnion

log = logging.getLogger(__name__)

COMMANDS = ("txt2img", "settings", "queue", "cancel", "history", "balance", "help", "start")
ADMIN_COMMANDS = ("stats", "ban", "unban")
PAYMENT_COMMANDS = ("buy", "credits", "paysupport", "terms")  # PAYMENTS=stars
ADMIN_PAYMENT_COMMANDS = ("refund",)


@dataclass
class Menus:
    sender: Sender
    t: UiTexts
    options: BotOptions

    def command_list(self, locale: Locale, admin: bool = False) -> list[BotCommand]:
        names = COMMANDS + (PAYMENT_COMMANDS if self.options.payments else ())
        names += ADMIN_COMMANDS if admin else ()
        names += ADMIN_PAYMENT_COMMANDS if admin and self.options.payments else ()
        return [BotCommand(command=name, description=self.t(locale, f"cmd-{name}")) for name in names]

    async def _set(
        self, commands: list[BotCommand], scope: BotCommandScopeUnion, language_code: str | None, chat_id: int = 0
    ) -> None:
        await self.sender.call(
            chat_id,
            lambda: self.sender.bot.set_my_commands(commands, scope=scope, language_code=language_code),
            paced=False,
        )

    async def set_everyones(self) -> None:
        """Everyone's menus, per language (English is also the default for other languages)."""
        try:
            await self._set(self.command_list(Locale.EN), BotCommandScopeDefault(), None)
            for locale in Locale:
                await self._set(self.command_list(locale), BotCommandScopeDefault(), locale.value)
            for admin in sorted(self.options.admins):
                scope = BotCommandScopeChat(chat_id=admin)
                for locale in Locale:
                    await self._set(self.command_list(locale, admin=True), scope, locale.value, admin)
                await self._set(self.command_list(Locale.EN, admin=True), scope, None, admin)
        except Exception as exc:  # the menu is a nicety: never stop the bot for it
            log.warning("setting the command menu failed: %s", type(exc).__name__)

    async def set_chats(self, chat_id: int, locale: Locale | None, user_id: int) -> None:
        """After a language change in /settings: this chat's menu in that language, whatever the
        client's language (so every language variant of the chat scope is set); no language:
        back to the per-language menus."""
        scope = BotCommandScopeChat(chat_id=chat_id)
        admin = self.options.is_admin(user_id)
        try:
            for code in (None, *(lang.value for lang in Locale)):
                if locale is not None:
                    await self._set(self.command_list(locale, admin=admin), scope, code, chat_id)
                elif admin:
                    shown = Locale(code) if code else Locale.EN
                    await self._set(self.command_list(shown, admin=True), scope, code, chat_id)
                else:
                    await self.sender.call(
                        chat_id,
                        functools.partial(self.sender.bot.delete_my_commands, scope=scope, language_code=code),
                        paced=False,
                    )
        except Exception as exc:
            log.warning("setting the menu of chat %s failed: %s", chat_id, type(exc).__name__)
