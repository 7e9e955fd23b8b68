"""Your jobs: /queue (or /status), /cancel and its buttons, /history."""

from __future__ import annotations

import contextlib
import logging

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from adapters.telegram.keyboards import CancelButton, cancel_choice_keyboard, history_keyboard, short
from adapters.telegram.options import BotOptions
from adapters.telegram.replies import Replies
from adapters.telegram.sender import Sender
from adapters.telegram.status import QUEUED, StatusBoard
from adapters.telegram.texts import BotTexts
from domain.errors import RecipientGone
from domain.models import Locale, Stage
from domain.ports import JobQueue, Storage, UserStore
from domain.use_cases.admit import AdmitJobs, CancelJob
from domain.users import JobRecord, JobState

log = logging.getLogger(__name__)


def _state_line(texts: BotTexts, board: StatusBoard, locale: Locale, job: JobRecord, position: int) -> str:
    """Where one job of /queue is: running (how far), or waiting (its place and wait)."""
    live = board.stage(job.job_id)
    if job.state == JobState.RUNNING or (live and live[0] != QUEUED):
        stage, percent = live or (Stage.STARTED, 0)
        if stage == Stage.GENERATING:
            return texts.t(locale, "queue-running", percent=percent)
        return texts.t(locale, "queue-started" if stage != Stage.UPLOADING else "queue-uploading")
    return texts.t(locale, "queue-waiting", position=position, eta=texts.wait(locale, position))


async def on_queue(
    message: Message,
    replies: Replies,
    texts: BotTexts,
    store: UserStore,
    queue: JobQueue,
    admit: AdmitJobs,
    board: StatusBoard,
    options: BotOptions,
    locale: Locale,
) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    mine = await store.active_jobs(user_id, since=texts.clock() - options.limits.expiry_s)
    try:
        depth = await queue.backlog()
    except Exception:
        depth = 0
    if not mine:
        await replies.reply(message.chat.id, texts.t(locale, "queue-empty", depth=depth), private_to=user_id)
        return
    positions = await admit.queue_positions()
    lines = [
        texts.t(
            locale,
            "queue-line",
            n=i,
            prompt=short(job.prompt, 60),
            state=_state_line(texts, board, locale, job, positions.get(job.job_id, 1)),
        )
        for i, job in enumerate(mine, 1)
    ]
    text = texts.t(locale, "queue-header", count=len(mine), depth=depth) + "\n" + "\n".join(lines)
    await replies.reply(message.chat.id, text, private_to=user_id)


async def on_cancel(
    message: Message,
    command: CommandObject,
    replies: Replies,
    store: UserStore,
    cancel_job: CancelJob,
    locale: Locale,
) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    mine = await store.active_jobs(user_id)
    t = replies.t
    if not mine:
        await replies.reply(message.chat.id, t(locale, "cancel-nothing"), private_to=user_id)
        return
    if len(mine) == 1 or (command.args or "").strip().lower() in ("all", "все", "всё"):
        done = [job for job in mine if await cancel_job(job, user_id, locale)]
        await replies.reply(
            message.chat.id,
            t(locale, "cancel-done", count=len(done), prompt=short(mine[0].prompt, 60)),
            private_to=user_id,
        )
        return
    await replies.reply(
        message.chat.id,
        t(locale, "cancel-choose", count=len(mine)),
        markup=cancel_choice_keyboard(t, locale, mine),
        private_to=user_id,
    )


async def _cancel_pressed(
    query: CallbackQuery, targets: list[JobRecord], replies: Replies, cancel_job: CancelJob, locale: Locale
) -> None:
    """Cancel ``targets`` for the one who pressed; confirmed in the chat unless the button was
    on a status message (which says so itself)."""
    if not targets:
        await replies.answer(query, replies.t(locale, "cancel-too-late"))
        return
    user_id = query.from_user.id
    await replies.answer(query, replies.t(locale, "cancel-answer"))  # at once, before the work
    done = [job for job in targets if await cancel_job(job, user_id, locale)]
    chat_id = query.message.chat.id if query.message else user_id
    status_ids = {job.status_message_id for job in targets}
    if query.inline_message_id is not None:
        return  # a guest job's status, an inline message: it says so itself
    if query.message is None or query.message.message_id not in status_ids:
        # pressed under the /cancel list, not on a status message: confirm there
        await replies.reply(
            chat_id,
            replies.t(locale, "cancel-done", count=len(done), prompt=short(targets[0].prompt, 60)),
            private_to=user_id,
        )


async def on_cancel_all_button(
    query: CallbackQuery, store: UserStore, replies: Replies, cancel_job: CancelJob, locale: Locale
) -> None:
    """The presser's own jobs, whoever's list the button is under."""
    await _cancel_pressed(query, await store.active_jobs(query.from_user.id), replies, cancel_job, locale)


async def on_cancel_button(
    query: CallbackQuery, callback_data: CancelButton, replies: Replies, cancel_job: CancelJob, locale: Locale
) -> None:
    # Only the owner cancels, even in a group whose members share the picture buttons.
    record = await replies.job_for_button(query, callback_data.job, locale, owner_only=True)
    if record is None:
        return  # answered: forgotten, or someone else's
    await _cancel_pressed(query, [record] if record.active else [], replies, cancel_job, locale)


async def on_history(
    message: Message,
    replies: Replies,
    sender: Sender,
    store: UserStore,
    storage: Storage,
    options: BotOptions,
    locale: Locale,
) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    records = await store.history(user_id, options.history_size)
    t = replies.t
    if not records:
        await replies.reply(message.chat.id, t(locale, "history-empty"), private_to=user_id)
        return
    lines: list[str] = []
    links: list[tuple[int, str, str | None]] = []
    for i, job in enumerate(records, 1):
        url = job.image_url or ""
        if job.image_key:
            with contextlib.suppress(Exception):  # a fresh link: stored ones expire
                url = await storage.link(job.image_key)
        links.append((i, job.job_id, url))
        line = t(
            locale,
            "history-line",
            n=i,
            prompt=short(job.prompt, 80),
            seed=str(job.seed),
            width=str(job.width),
            height=str(job.height),
        )
        lines.append(line)
    text = t(locale, "history-header", count=len(records), links=options.links) + "\n" + "\n".join(lines)
    # Links Telegram would refuse are PNG buttons already; should it refuse one anyway, the
    # list goes again with PNG buttons only, then bare: /history always answers.
    # In a group the list is its user's alone: an ephemeral message (``Replies.private``).
    if await replies.private(message.chat.id, user_id, text, markup=history_keyboard(t, locale, links)):
        return
    for markup in (
        history_keyboard(t, locale, links),
        history_keyboard(t, locale, [(n, job_id, None) for n, job_id, _ in links]),
        None,
    ):
        try:
            await sender.send_message(message.chat.id, text, reply_markup=markup)
            return
        except RecipientGone:
            return
        except TelegramBadRequest as exc:
            log.info("/history refused (%s): trying again with less", exc.message)


def router() -> Router:
    r = Router(name="jobs")
    r.message.register(on_queue, Command("queue", "status"))
    r.message.register(on_cancel, Command("cancel"))
    r.callback_query.register(on_cancel_all_button, CancelButton.filter(F.job == "all"))
    r.callback_query.register(on_cancel_button, CancelButton.filter())
    r.message.register(on_history, Command("history"))
    return r
