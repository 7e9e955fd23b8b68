"""Guest mode (Bot API 10.0): "@bot a lighthouse in a storm" in any chat, even one the bot is not a
member of. The prompt (the same parameters as a message) is admitted like any prompt of its
caller, who owns the job; its status is posted as the answer to the guest query and edited in
place into the picture (adapters/telegram/guests.py). Banned users and users not on the
allowlist are answered by ``UserContext`` with a short refusal before this handler."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Message

from adapters.telegram.guests import without_mention
from adapters.telegram.intake import PromptIntake
from domain.models import Locale
from domain.users import UserPrefs


async def on_guest_message(message: Message, intake: PromptIntake, locale: Locale, prefs: UserPrefs) -> None:
    if not message.guest_query_id or message.from_user is None:
        return
    me = await message.bot.me() if message.bot else None
    text = without_mention(message.text or message.caption or "", me.username or "" if me else "")
    await intake.accept_guest(
        user_id=message.from_user.id,
        chat_id=message.chat.id,
        message_id=message.message_id,
        query_id=message.guest_query_id,
        locale=locale,
        prefs=prefs,
        text=text,
    )


def router() -> Router:
    r = Router(name="guests")
    r.guest_message.register(on_guest_message)
    return r
