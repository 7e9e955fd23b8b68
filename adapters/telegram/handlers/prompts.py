"""Prompts: /txt2img <prompt> and plain text in a private chat; in groups /txt2img (also as
/txt2img@botname) and replies to the bot's messages. A long paste split by the client arrives
joined (``joined_text``, from the UserContext middleware)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.intake import PromptIntake
from domain.models import Locale
from domain.users import UserPrefs


def command_args(text: str) -> str:
    """What follows the command word of ``text`` ("/txt2img@bot a cat" -> "a cat")."""
    parts = text.split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


async def _accept(message: Message, intake: PromptIntake, locale: Locale, prefs: UserPrefs, text: str) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    await intake.accept_text(
        user_id=user_id,
        chat_id=message.chat.id,
        locale=locale,
        prefs=prefs,
        text=text,
        reply_to=message.message_id,
    )


async def on_txt2img(
    message: Message,
    command: CommandObject,
    intake: PromptIntake,
    locale: Locale,
    prefs: UserPrefs,
    joined_text: str | None = None,
) -> None:
    text = command_args(joined_text) if joined_text else (command.args or "")
    await _accept(message, intake, locale, prefs, text)


async def on_text(
    message: Message, intake: PromptIntake, locale: Locale, prefs: UserPrefs, joined_text: str | None = None
) -> None:
    await _accept(message, intake, locale, prefs, joined_text or message.text or "")


async def on_reply_in_group(
    message: Message, intake: PromptIntake, locale: Locale, prefs: UserPrefs, joined_text: str | None = None
) -> None:
    me = await message.bot.me() if message.bot else None
    replied = message.reply_to_message
    if me is None or replied is None or replied.from_user is None or replied.from_user.id != me.id:
        return  # a reply to another bot
    await _accept(message, intake, locale, prefs, joined_text or message.text or "")


def router() -> Router:
    r = Router(name="prompts")
    r.message.register(on_txt2img, Command("txt2img"))
    r.message.register(on_text, F.chat.type == "private", F.text & ~F.text.startswith("/"))
    r.message.register(
        on_reply_in_group,
        F.chat.type != "private",
        F.text & ~F.text.startswith("/"),
        F.reply_to_message.from_user.is_bot,
    )
    return r
