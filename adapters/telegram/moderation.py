"""Operator controls in the Telegram front: users' reports of pictures (to the admins' chat),
bans by the admins (``/ban``, ``/unban``; a banned user is told once, then ignored), and the
safety line of ``/stats``."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import BufferedInputFile, CallbackQuery, Message, User

from adapters.telegram.front import Front
from adapters.telegram.keyboards import short
from adapters.telegram.sender import Priority
from domain.errors import RecipientGone
from domain.models import Locale

log = logging.getLogger(__name__)


async def tell_banned(front: Front, event: Any, locale: Locale, user_id: int) -> None:
    """A banned user hears it once (the store makes sure, across messages and instances);
    after that their messages get no answer, and their buttons stop spinning silently."""
    first = await front.store.ban_noticed(user_id)
    text = front.t(locale, "banned-notice") if first else None
    if isinstance(event, CallbackQuery):
        await front.answer(event, text, alert=bool(text))
    elif isinstance(event, Message) and text:
        await front.reply(event.chat.id, text)
    if first:
        log.info("user %s is banned: told once", user_id)


def report_targets(front: Front) -> list[int]:
    """Where reports go: ADMIN_CHAT_ID, or every admin's own chat."""
    if front.config.admin_chat_id:
        return [front.config.admin_chat_id]
    return sorted(front.config.admins)


def _who(user: User) -> str:
    name = " ".join(part for part in (user.first_name, user.last_name) if part) or "?"
    return f"{name} (@{user.username})" if user.username else name


async def report_picture(front: Front, query: CallbackQuery, job_id: str, locale: Locale) -> None:
    """A user's report of a picture: answered at once, then the picture goes to the admins with
    who reported it, the prompt and the command to ban them."""
    user = query.from_user
    record = await front.job_for_button(query, job_id, locale)  # the owner's, or a group's own
    if record is None:
        return  # answered: forgotten, or not this user's to report
    if not record.image_key:
        await front.answer(query, front.t(locale, "answer-report-gone"))
        return
    targets = report_targets(front)
    if not targets:  # an old button: no Report button is shown while nobody receives reports
        log.warning("a report of job %s has nowhere to go: set ADMIN_IDS or ADMIN_CHAT_ID", job_id)
        await front.answer(query, front.t(locale, "answer-report-nobody"))
        return
    if not front.safety.reported(job_id):
        await front.answer(query, front.t(locale, "answer-report-again"))
        return
    await front.answer(query, front.t(locale, "answer-report"))
    try:
        png = await front.storage.get(record.image_key)
    except Exception as exc:
        log.warning("the reported picture of %s cannot be read: %s", job_id, type(exc).__name__)
        png = None
    for chat_id in targets:
        prefs = await front.store.get_prefs(chat_id)
        admin_locale = prefs.locale or Locale.EN
        text = front.t(
            admin_locale,
            "report-admin",
            name=_who(user),
            user_id=str(user.id),
            job_id=job_id,
            prompt=short(record.prompt, 600),
        )
        try:
            await _send_report(front, chat_id, text, png, job_id)
        except Exception as exc:  # one unreachable admin does not stop the others
            log.warning("report of %s not delivered to chat %s: %s", job_id, chat_id, type(exc).__name__)
    log.info("user %s reported job %s to %d chat(s)", user.id, job_id, len(targets))


async def _send_report(front: Front, chat_id: int, text: str, png: bytes | None, job_id: str) -> None:
    if png is None:
        await front.sender.send_message(chat_id, text, priority=Priority.INTERACTIVE)
        return
    upload = BufferedInputFile(png, filename=f"report-{job_id[:12]}.png")
    try:  # behind a spoiler: an admin chat may be open on a shared screen
        await front.sender.send_photo(chat_id, upload, caption=text, has_spoiler=True, priority=Priority.INTERACTIVE)
    except (TelegramBadRequest, TelegramEntityTooLarge):
        await front.sender.send_document(chat_id, upload, caption=text, priority=Priority.INTERACTIVE)


def parse_user_id(args: str | None) -> int | None:
    text = (args or "").strip().split()
    if len(text) != 1:
        return None
    try:
        value = int(text[0])
    except ValueError:
        return None
    return value if value > 0 else None


async def ban_command(front: Front, message: Message, args: str | None, locale: Locale, *, ban: bool) -> None:
    admin = message.from_user.id if message.from_user else 0
    command = "/ban" if ban else "/unban"
    if not front.is_admin(admin):
        await front.reply(message.chat.id, front.t(locale, "error-admins_only_command", command=command))
        return
    user_id = parse_user_id(args)
    if user_id is None:
        await front.reply(message.chat.id, front.t(locale, "ban-usage"))
        return
    if ban and front.is_admin(user_id):
        await front.reply(message.chat.id, front.t(locale, "ban-admin", user_id=str(user_id)))
        return
    if ban:
        changed = await front.store.ban(user_id, front.clock())
        key = "ban-done" if changed else "ban-already"
    else:
        changed = await front.store.unban(user_id)
        key = "unban-done" if changed else "unban-not-banned"
    log.info(
        "admin %s %s user %s (%s)",
        admin,
        "banned" if ban else "unbanned",
        user_id,
        "changed" if changed else "no change",
    )
    with contextlib.suppress(RecipientGone):
        await front.reply(message.chat.id, front.t(locale, key, user_id=str(user_id)))


def safety_line(front: Front, locale: Locale, banned_users: int) -> str:
    tally = front.safety
    return front.t(
        locale,
        "stats-safety",
        refused=sum(tally.prompts_refused.values()),
        refused_worker=tally.results["prompt_refused"],
        images_refused=tally.results["image_refused"],
        spoilers=tally.results["spoiler"],
        reports=tally.reports,
        banned=banned_users,
    )
