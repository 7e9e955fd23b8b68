"""/settings: default aspect ratio, quality, language, photo-or-document and whether prompts are
translated into English for the model, on an inline keyboard, kept in the user store."""

from __future__ import annotations

import contextlib

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from adapters.telegram.commands import set_chat_commands
from adapters.telegram.front import Front
from adapters.telegram.keyboards import SetPref, settings_keyboard
from adapters.telegram.middleware import telegram_locale
from adapters.telegram.sender import Priority
from domain.models import Locale
from domain.users import UserPrefs


def translate_key(front: Front, prefs: UserPrefs) -> str:
    """What really happens to the user's prompts: translated only when they asked for it and the
    service translates (not with PROMPT_TRANSLATION=off, nor for the placeholder generator)."""
    if not front.translates():
        return "translate-unavailable"
    return "translate-on" if prefs.translate else "translate-off"


def settings_text(front: Front, locale: Locale, prefs: UserPrefs, telegram: Locale) -> str:
    if prefs.aspect:
        aspect = prefs.aspect
    else:
        aspect = front.t(
            locale,
            "settings-aspect-default",
            width=str(front.submit.default_width),
            height=str(front.submit.default_height),
        )
    language = (
        front.t(locale, f"language-{prefs.locale.value}")
        if prefs.locale
        else front.t(locale, "settings-language-auto", language=front.t(locale, f"language-{telegram.value}"))
    )
    return front.t(
        locale,
        "settings",
        aspect=aspect,
        quality=front.t(locale, f"quality-{prefs.quality.value}"),
        language=language,
        send_as=front.t(locale, f"send-as-{prefs.send_as.value}"),
        translate=front.t(locale, translate_key(front, prefs)),
    )


def router() -> Router:
    r = Router(name="settings")

    @r.message(Command("settings"))
    async def on_settings(message: Message, front: Front, locale: Locale, prefs: UserPrefs) -> None:
        text = settings_text(front, locale, prefs, telegram_locale(message.from_user))
        with contextlib.suppress(Exception):
            await front.sender.send_message(
                message.chat.id, text, reply_markup=settings_keyboard(front.t, locale, prefs)
            )

    @r.callback_query(SetPref.filter())
    async def on_set(query: CallbackQuery, callback_data: SetPref, front: Front, prefs: UserPrefs) -> None:
        new = front.prefs_with(prefs, callback_data.field, callback_data.value)
        telegram = telegram_locale(query.from_user)
        locale = new.locale or telegram
        await front.answer(query, front.t(locale, "settings-saved"))  # at once, before the work
        if new != prefs:
            await front.store.save_prefs(new)
        if query.message is None or new == prefs:
            return
        await front.sender.edit_text(
            query.message.chat.id,
            query.message.message_id,
            settings_text(front, locale, new, telegram),
            reply_markup=settings_keyboard(front.t, locale, new),
            priority=Priority.INTERACTIVE,
        )
        if new.locale != prefs.locale:  # the command menu follows the chosen language
            front.spawn(set_chat_commands(front, query.message.chat.id, new.locale, query.from_user.id))

    return r
