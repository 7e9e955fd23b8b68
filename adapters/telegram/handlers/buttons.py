"""The buttons under a picture, one handler each: a new seed, variations, the original PNG, the
report to the admins. (The link button is a URL button: Telegram opens it without asking the
bot.) Every callback query is answered at once, before the work, so the button never spins; but
first the job's record says whether the one who pressed may use it (``Replies.job_for_button``),
so a forgotten or foreign picture gets one answer that says so, and nothing else happens."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import BufferedInputFile, CallbackQuery

from adapters.telegram.i18n import UiTexts
from adapters.telegram.job_maker import JobMaker
from adapters.telegram.keyboards import ResultAction
from adapters.telegram.options import BotOptions
from adapters.telegram.replies import Replies
from adapters.telegram.reports import Reports
from adapters.telegram.sender import Priority, Sender
from adapters.telegram.texts import BotTexts
from domain.errors import InvalidRequest, RecipientGone
from domain.models import Locale
from domain.ports import Storage
from domain.use_cases.admit import AdmitJobs
from domain.users import UserPrefs

log = logging.getLogger(__name__)


def _where(query: CallbackQuery) -> tuple[int, int | None]:
    """The chat the button is in, and its message (what the answer replies to)."""
    chat_id = query.message.chat.id if query.message else query.from_user.id
    return chat_id, query.message.message_id if query.message else None


async def _repeat(
    query: CallbackQuery,
    callback_data: ResultAction,
    *,
    count: int,
    answer_key: str,
    album: bool,
    replies: Replies,
    texts: BotTexts,
    jobs: JobMaker,
    admit: AdmitJobs,
    options: BotOptions,
    locale: Locale,
    prefs: UserPrefs,
) -> None:
    """The picture's prompt again with ``count`` new seeds."""
    record = await replies.job_for_button(query, callback_data.job, locale)
    if record is None:
        return  # answered: forgotten, or not this user's
    chat_id, reply_to = _where(query)
    try:
        repeated = jobs.repeat_jobs(
            record, user_id=query.from_user.id, chat_id=chat_id, locale=locale, count=count, translate=prefs.translate
        )
    except InvalidRequest as exc:
        await replies.answer(query)
        await replies.reply(chat_id, texts.error_text(locale, exc), reply_to=reply_to, private_to=query.from_user.id)
        return
    await replies.answer(query, texts.t(locale, answer_key, count=options.variations))
    await admit(repeated, reply_to=reply_to, album=album)


async def on_new_seed(
    query: CallbackQuery,
    callback_data: ResultAction,
    replies: Replies,
    texts: BotTexts,
    jobs: JobMaker,
    admit: AdmitJobs,
    options: BotOptions,
    locale: Locale,
    prefs: UserPrefs,
) -> None:
    await _repeat(
        query, callback_data, count=1, answer_key="answer-new-seed", album=False,
        replies=replies, texts=texts, jobs=jobs, admit=admit, options=options, locale=locale, prefs=prefs,
    )  # fmt: skip


async def on_variations(
    query: CallbackQuery,
    callback_data: ResultAction,
    replies: Replies,
    texts: BotTexts,
    jobs: JobMaker,
    admit: AdmitJobs,
    options: BotOptions,
    locale: Locale,
    prefs: UserPrefs,
) -> None:
    await _repeat(
        query, callback_data, count=options.variations, answer_key="answer-variations", album=True,
        replies=replies, texts=texts, jobs=jobs, admit=admit, options=options, locale=locale, prefs=prefs,
    )  # fmt: skip


async def on_original(
    query: CallbackQuery,
    callback_data: ResultAction,
    replies: Replies,
    sender: Sender,
    storage: Storage,
    t: UiTexts,
    locale: Locale,
) -> None:
    """The PNG exactly as stored (a document: Telegram does not recompress documents)."""
    record = await replies.job_for_button(query, callback_data.job, locale)
    if record is None:
        return
    if not record.image_key:  # not drawn (yet, or at all): nothing to send
        await replies.answer(query, t(locale, "error-original_gone"))
        return
    await replies.answer(query, t(locale, "answer-png"))
    chat_id, reply_to = _where(query)
    try:
        png = await storage.get(record.image_key)
    except KeyError:
        await replies.reply(chat_id, t(locale, "error-original_gone"), reply_to=reply_to, private_to=query.from_user.id)
        return
    upload = BufferedInputFile(png, filename=f"prompt2pic-{record.job_id[:12]}.png")
    try:
        async with sender.chat_action(chat_id, "upload_document"):
            await sender.send_document(
                chat_id, upload, reply_to=reply_to, priority=Priority.INTERACTIVE, caption=t(locale, "original-caption")
            )
    except RecipientGone:
        pass
    except (TelegramBadRequest, TelegramEntityTooLarge) as exc:
        log.warning("the original of %s was refused: %s", record.job_id, exc.message)
        await replies.reply(
            chat_id, t(locale, "error-original_refused"), reply_to=reply_to, private_to=query.from_user.id
        )


async def on_report(query: CallbackQuery, callback_data: ResultAction, reports: Reports, locale: Locale) -> None:
    await reports.report_picture(query, callback_data.job, locale)


async def on_dead_button(query: CallbackQuery, replies: Replies, t: UiTexts, locale: Locale) -> None:
    """A result button of an action this release does not have."""
    await replies.answer(query, t(locale, "answer-button-dead"))


def router() -> Router:
    r = Router(name="buttons")
    r.callback_query.register(on_new_seed, ResultAction.filter(F.action == "new"))
    r.callback_query.register(on_variations, ResultAction.filter(F.action == "var"))
    r.callback_query.register(on_original, ResultAction.filter(F.action == "png"))
    r.callback_query.register(on_report, ResultAction.filter(F.action == "rep"))
    r.callback_query.register(on_dead_button, ResultAction.filter())
    return r
