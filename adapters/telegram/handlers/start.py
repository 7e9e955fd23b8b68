"""/start and /help; both say what makes the pictures (the model, random test weights or a
placeholder), so that nobody takes a stand-in for the model's work."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from adapters.telegram.front import Front
from domain.models import Locale
from domain.params import COMMON_RATIOS, VALID_QUALITIES, max_ratio


def router() -> Router:
    r = Router(name="start")

    @r.message(CommandStart())
    async def on_start(message: Message, front: Front, locale: Locale) -> None:
        name = message.from_user.first_name if message.from_user else ""
        text = front.t(locale, "start", name=name, generator=front.generator_text(locale))
        await front.reply(message.chat.id, text)

    @r.message(Command("help"))
    async def on_help(message: Message, front: Front, locale: Locale) -> None:
        limits = front.config.limits
        text = front.t(
            locale,
            "help",
            limit=front.submit.limits.max_prompt_chars,
            ratios=", ".join(COMMON_RATIOS),
            low=f"1:{max_ratio(front.submit.limits)}",
            high=f"{max_ratio(front.submit.limits)}:1",
            qualities=VALID_QUALITIES,
            max_in_flight=limits.max_in_flight,
            per_minute=limits.per_minute,
            variations=front.config.variations,
            links=front.config.links,
            bot=(await message.bot.me()).username if message.bot else "",
            generator=front.generator_text(locale),
        )
        await front.reply(message.chat.id, text)

    return r
