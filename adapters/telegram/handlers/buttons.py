"""The buttons under a picture: a new seed, variations, the original PNG. (The link button is a
URL button: Telegram opens it without asking the bot.) Every callback query is answered at once,
before the work, so the button never spins; but first the job's record says whether the one who
pressed may use it (``Front.job_for_button``), so a forgotten or foreign picture gets one answer
that says so, and nothing else happens."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery

from adapters.telegram.front import Front
from adapters.telegram.keyboards import ResultAction
from domain.errors import InvalidRequest
from domain.models import Locale
from domain.users import UserPrefs


def router() -> Router:
    r = Router(name="buttons")

    @r.callback_query(ResultAction.filter())
    async def on_result_button(
        query: CallbackQuery, callback_data: ResultAction, front: Front, locale: Locale, prefs: UserPrefs
    ) -> None:
        action = callback_data.action
        answer_key = {"new": "answer-new-seed", "var": "answer-variations", "png": "answer-png"}.get(action)
        if answer_key is None:
            await front.answer(query, front.t(locale, "answer-button-dead"))
            return
        record = await front.job_for_button(query, callback_data.job, locale)
        if record is None:
            return  # answered: forgotten, or not this user's
        chat_id = query.message.chat.id if query.message else query.from_user.id
        reply_to = query.message.message_id if query.message else None
        if action == "png":
            if not record.image_key:  # not drawn (yet, or at all): nothing to send
                await front.answer(query, front.t(locale, "error-original_gone"))
                return
            await front.answer(query, front.t(locale, answer_key))
            await front.send_original(record.job_id, record.image_key, chat_id, locale, reply_to)
            return
        count = 1 if action == "new" else front.config.variations
        try:
            jobs = front.repeat_jobs(
                record,
                user_id=query.from_user.id,
                chat_id=chat_id,
                locale=locale,
                count=count,
                translate=prefs.translate,
            )
        except InvalidRequest as exc:
            await front.answer(query)
            await front.reply(chat_id, front.error_text(locale, exc), reply_to=reply_to)
            return
        await front.answer(query, front.t(locale, answer_key, count=front.config.variations))
        await front.enqueue(jobs, locale=locale, reply_to=reply_to, album=action == "var")

    return r
