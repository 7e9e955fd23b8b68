"""Your jobs: /queue (or /status), /cancel, /history."""

from __future__ import annotations

import contextlib
import logging

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from adapters.telegram.front import Front
from adapters.telegram.keyboards import CancelButton, cancel_choice_keyboard, history_keyboard, short
from adapters.telegram.status import QUEUED
from domain.errors import RecipientGone
from domain.models import Locale, Stage
from domain.users import JobState

log = logging.getLogger(__name__)


def router() -> Router:
    r = Router(name="jobs")

    @r.message(Command("queue", "status"))
    async def on_queue(message: Message, front: Front, locale: Locale) -> None:
        user_id = message.from_user.id if message.from_user else message.chat.id
        now = front.clock()
        mine = await front.store.active_jobs(user_id, since=now - front.config.limits.expiry_s)
        try:
            depth = await front.queue.backlog()
        except Exception:
            depth = 0
        if not mine:
            await front.reply(message.chat.id, front.t(locale, "queue-empty", depth=depth))
            return
        positions = await front.queue_positions()
        lines = []
        for i, job in enumerate(mine, 1):
            live = front.board.stage(job.job_id)
            if job.state == JobState.RUNNING or (live and live[0] != QUEUED):
                stage, percent = live or (Stage.STARTED, 0)
                state = (
                    front.t(locale, "queue-running", percent=percent)
                    if stage == Stage.GENERATING
                    else front.t(locale, "queue-started" if stage != Stage.UPLOADING else "queue-uploading")
                )
            else:
                position = positions.get(job.job_id, 1)
                state = front.t(
                    locale,
                    "queue-waiting",
                    position=position,
                    eta=front.eta(locale, front.estimator.wait_s(position - 1, now)),
                )
            lines.append(front.t(locale, "queue-line", n=i, prompt=short(job.prompt, 60), state=state))
        text = front.t(locale, "queue-header", count=len(mine), depth=depth) + "\n" + "\n".join(lines)
        await front.reply(message.chat.id, text)

    @r.message(Command("cancel"))
    async def on_cancel(message: Message, command: CommandObject, front: Front, locale: Locale) -> None:
        user_id = message.from_user.id if message.from_user else message.chat.id
        mine = await front.store.active_jobs(user_id)
        if not mine:
            await front.reply(message.chat.id, front.t(locale, "cancel-nothing"))
            return
        if len(mine) == 1 or (command.args or "").strip().lower() in ("all", "все", "всё"):
            done = [job for job in mine if await front.cancel(job, user_id, locale)]
            await front.reply(
                message.chat.id,
                front.t(locale, "cancel-done", count=len(done), prompt=short(mine[0].prompt, 60)),
            )
            return
        await front.reply(
            message.chat.id,
            front.t(locale, "cancel-choose", count=len(mine)),
            markup=cancel_choice_keyboard(front.t, locale, mine),
        )

    @r.callback_query(CancelButton.filter())
    async def on_cancel_button(query: CallbackQuery, callback_data: CancelButton, front: Front, locale: Locale) -> None:
        user_id = query.from_user.id
        if callback_data.job == "all":  # the presser's own jobs, whoever's list it is under
            targets = await front.store.active_jobs(user_id)
        else:
            # Only the owner cancels, even in a group whose members share the picture buttons.
            record = await front.job_for_button(query, callback_data.job, locale, owner_only=True)
            if record is None:
                return  # answered: forgotten, or someone else's
            targets = [record] if record.active else []
        if not targets:
            await front.answer(query, front.t(locale, "cancel-too-late"))
            return
        await front.answer(query, front.t(locale, "cancel-answer"))  # at once, before the work
        done = [job for job in targets if await front.cancel(job, user_id, locale)]
        chat_id = query.message.chat.id if query.message else user_id
        status_ids = {job.status_message_id for job in targets}
        if query.message is None or query.message.message_id not in status_ids:
            # pressed under the /cancel list, not on a status message: confirm there
            await front.reply(
                chat_id, front.t(locale, "cancel-done", count=len(done), prompt=short(targets[0].prompt, 60))
            )

    @r.message(Command("history"))
    async def on_history(message: Message, front: Front, locale: Locale) -> None:
        user_id = message.from_user.id if message.from_user else message.chat.id
        records = await front.store.history(user_id, front.config.history_size)
        if not records:
            await front.reply(message.chat.id, front.t(locale, "history-empty"))
            return
        lines: list[str] = []
        links: list[tuple[int, str, str | None]] = []
        for i, job in enumerate(records, 1):
            url = job.image_url or ""
            if job.image_key:
                with contextlib.suppress(Exception):  # a fresh link: stored ones expire
                    url = await front.storage.link(job.image_key)
            links.append((i, job.job_id, url))
            lines.append(
                front.t(
                    locale,
                    "history-line",
                    n=i,
                    prompt=short(job.prompt, 80),
                    seed=str(job.seed),
                    width=str(job.width),
                    height=str(job.height),
                )
            )
        header = front.t(locale, "history-header", count=len(records), links=front.config.links)
        text = header + "\n" + "\n".join(lines)
        # Links Telegram would refuse are PNG buttons already; should it refuse one anyway, the
        # list goes again with PNG buttons only, then bare: /history always answers.
        for markup in (
            history_keyboard(front.t, locale, links),
            history_keyboard(front.t, locale, [(n, job_id, None) for n, job_id, _ in links]),
            None,
        ):
            try:
                await front.sender.send_message(message.chat.id, text, reply_markup=markup)
                return
            except RecipientGone:
                return
            except TelegramBadRequest as exc:
                log.info("/history refused (%s): trying again with less", exc.message)

    return r
