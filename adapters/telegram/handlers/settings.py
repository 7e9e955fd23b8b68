"""/settings: default aspect ratio, quality, language, photo-or-document and whether prompts are
translated into English for the model, on an inline keyboard, kept in the user store."""

from __future__ import annotations

import contextlib

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from adapters.telegram.background import Background
from adapters.telegram.commands import Menus
from adapters.telegram.job_maker import JobMaker
from adapters.telegram.keyboards import SetPref, settings_keyboard
from adapters.telegram.middleware import telegram_locale
from adapters.telegram.options import BotOptions
from adapters.telegram.outside import OutsideMessages
from adapters.telegram.replies import Replies
from adapters.telegram.sender import Priority, Sender
from adapters.telegram.texts import BotTexts
from domain.models import GeneratorKind, Locale
from domain.ports import UserStore
from domain.users import UserPrefs


def translates(options: BotOptions, texts: BotTexts) -> bool:
    """Whether prompts are translated for the model now: not with PROMPT_TRANSLATION=off, and
    not for the placeholder, which reads no prompt."""
    return options.translation and texts.watch.generator_kind != GeneratorKind.PLACEHOLDER


def translate_key(options: BotOptions, texts: BotTexts, prefs: UserPrefs) -> str:
    """What really happens to the user's prompts: translated only when they asked for it and the
    service translates (not with PROMPT_TRANSLATION=off, nor for the placeholder generator)."""
    if not translates(options, texts):
        return "translate-unavailable"
    return "translate-on" if prefs.translate else "translate-off"


def settings_text(
    texts: BotTexts, options: BotOptions, jobs: JobMaker, locale: Locale, prefs: UserPrefs, telegram: Locale
) -> str:
    t = texts.t
    if prefs.aspect:
        aspect = prefs.aspect
    else:
        aspect = t(
            locale,
            "settings-aspect-default",
            width=str(jobs.submit.default_width),
            height=str(jobs.submit.default_height),
        )
    language = (
        t(locale, f"language-{prefs.locale.value}")
        if prefs.locale
        else t(locale, "settings-language-auto", language=t(locale, f"language-{telegram.value}"))
    )
    return t(
        locale,
        "settings",
        aspect=aspect,
        quality=t(locale, f"quality-{prefs.quality.value}"),
        language=language,
        send_as=t(locale, f"send-as-{prefs.send_as.value}"),
        translate=t(locale, translate_key(options, texts, prefs)),
    )


def is_panel(message: object) -> bool:
    """Whether ``message`` (as Telegram gives it with a callback query) is a settings panel: its
    buttons are settings buttons. A settings press under any other message edits nothing."""
    markup = getattr(message, "reply_markup", None)
    rows = markup.inline_keyboard if markup is not None else []
    return any((button.callback_data or "").startswith(SetPref.__prefix__ + ":") for row in rows for button in row)


def panel_is_theirs(query: CallbackQuery) -> bool:
    """Whether the one who pressed a settings button may use the panel it is under: in a private
    chat always (the chat is theirs); in a group only their own panel, the one that answered
    their /settings (Telegram gives the message it replies to). Someone else's panel, or a
    forged settings press under someone's picture, changes nothing."""
    message = query.message
    if message is None or message.chat.type == "private":
        return True
    if not isinstance(message, Message) or not is_panel(message):
        return False
    if message.ephemeral_message_id:  # an ephemeral panel: only its receiver sees it, or presses it
        return message.receiver_user is not None and message.receiver_user.id == query.from_user.id
    asked = message.reply_to_message
    return asked is not None and asked.from_user is not None and asked.from_user.id == query.from_user.id


async def on_settings(
    message: Message,
    replies: Replies,
    sender: Sender,
    texts: BotTexts,
    options: BotOptions,
    jobs: JobMaker,
    locale: Locale,
    prefs: UserPrefs,
) -> None:
    text = settings_text(texts, options, jobs, locale, prefs, telegram_locale(message.from_user))
    markup = settings_keyboard(texts.t, locale, prefs)
    # in a group: a panel only its owner sees (an ephemeral message), else one that answers them
    if message.from_user and await replies.private(message.chat.id, message.from_user.id, text, markup=markup):
        return
    with contextlib.suppress(Exception):
        await sender.send_message(
            message.chat.id,
            text,
            reply_markup=markup,
            # in a group the panel answers its owner's /settings: only they may use it
            reply_to=None if message.chat.type == "private" else message.message_id,
        )


async def on_set(
    query: CallbackQuery,
    callback_data: SetPref,
    replies: Replies,
    sender: Sender,
    outside: OutsideMessages,
    store: UserStore,
    texts: BotTexts,
    options: BotOptions,
    jobs: JobMaker,
    menus: Menus,
    background: Background,
    prefs: UserPrefs,
    locale: Locale,
) -> None:
    if not panel_is_theirs(query):
        await replies.answer(query, texts.t(locale, "answer-settings-not-yours"))
        return
    new = jobs.prefs_with(prefs, callback_data.field, callback_data.value)
    telegram = telegram_locale(query.from_user)
    locale = new.locale or telegram
    await replies.answer(query, texts.t(locale, "settings-saved"))  # at once, before the work
    if new != prefs:
        await store.save_prefs(new)
    if query.message is None or new == prefs or not is_panel(query.message):
        return
    text = settings_text(texts, options, jobs, locale, new, telegram)
    markup = settings_keyboard(texts.t, locale, new)
    ephemeral = query.message.ephemeral_message_id if isinstance(query.message, Message) else None
    if ephemeral:  # (its message id is 0: edited by its ephemeral id)
        await outside.edit_ephemeral_text(
            query.message.chat.id, query.from_user.id, ephemeral, text, reply_markup=markup
        )
    else:
        await sender.edit_text(
            query.message.chat.id, query.message.message_id, text, reply_markup=markup, priority=Priority.INTERACTIVE
        )
    if new.locale != prefs.locale:  # the command menu follows the chosen language
        background.spawn(menus.set_chats(query.message.chat.id, new.locale, query.from_user.id))


def router() -> Router:
    r = Router(name="settings")
    r.message.register(on_settings, Command("settings"))
    r.callback_query.register(on_set, SetPref.filter())
    return r
