"""The buttons under a picture: a new seed, variations, the original PNG. (The link button is a
URL button: Telegram opens it without asking the bot.) Every callback query is answered at once,
before the work, so the button never spins."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery

from adapters.telegram.front import Front
from adapters.telegram.keyboards import ResultAction
from domain.errors import InvalidRequest
from domain.models import Locale, image_key
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
            await front.answer(query)
            return
        await front.answer(query, front.t(locale, answer_key, count=front.config.variations))
        chat_id = query.message.chat.id if query.message else query.from_user.id
        reply_to = query.message.message_id if query.message else None
        record = await front.store.get_job(callback_data.job)
        if action == "png":
            key = record.image_key if record and record.image_key else image_key(callback_data.job)
            await front.send_original(callback_data.job, key, chat_id, locale, reply_to)
            return
        if record is None:
            await front.reply(chat_id, front.t(locale, "error-job_forgotten"), reply_to=reply_to)
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
            await front.reply(chat_id, front.error_text(locale, exc), reply_to=reply_to)
            return
        await front.enqueue(jobs, locale=locale, reply_to=reply_to, album=action == "var")

    return r
