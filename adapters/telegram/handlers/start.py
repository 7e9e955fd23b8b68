"""/start and /help; both say what makes the pictures (the model, random test weights or a
placeholder), so that nobody takes a stand-in for the model's work."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from adapters.telegram.options import BotOptions
from adapters.telegram.replies import Replies
from adapters.telegram.texts import BotTexts
from domain.models import Locale
from domain.params import COMMON_RATIOS, VALID_QUALITIES, max_ratio
from domain.use_cases import SubmitPrompt


async def on_start(message: Message, replies: Replies, texts: BotTexts, locale: Locale) -> None:
    name = message.from_user.first_name if message.from_user else ""
    text = texts.t(locale, "start", name=name, generator=texts.generator_text(locale))
    await replies.reply(message.chat.id, text)


async def on_help(
    message: Message, replies: Replies, texts: BotTexts, options: BotOptions, submit: SubmitPrompt, locale: Locale
) -> None:
    limits = options.limits
    text = texts.t(
        locale,
        "help",
        limit=submit.limits.max_prompt_chars,
        ratios=", ".join(COMMON_RATIOS),
        low=f"1:{max_ratio(submit.limits)}",
        high=f"{max_ratio(submit.limits)}:1",
        qualities=VALID_QUALITIES,
        max_in_flight=limits.max_in_flight,
        per_minute=limits.per_minute,
        variations=options.variations,
        links=options.links,
        bot=(await message.bot.me()).username if message.bot else "",
        generator=texts.generator_text(locale),
    )
    await replies.reply(message.chat.id, text)


def router() -> Router:
    r = Router(name="start")
    r.message.register(on_start, CommandStart())
    r.message.register(on_help, Command("help"))
    return r
