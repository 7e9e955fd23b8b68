"""Inline mode: ``@bot <prompt>`` in any chat answers with the user's recent pictures that match
(shared by the file id Telegram gave them), and offers "generate": a button that opens the
private chat with the bot (``/start g<token>``), where the picture is drawn and arrives with a
button to share it."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections import OrderedDict
from typing import TYPE_CHECKING

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import (
    InlineQuery,
    InlineQueryResultCachedDocument,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    Message,
)

from adapters.telegram.intake import PromptIntake
from adapters.telegram.keyboards import short
from adapters.telegram.replies import Replies
from adapters.telegram.sender import Sender
from adapters.telegram.texts import BotTexts
from domain.models import Locale
from domain.ports import UserStore
from domain.users import JobRecord, UserPrefs

if TYPE_CHECKING:
    from aiogram.types import InlineQueryResultUnion

log = logging.getLogger(__name__)
RESULTS = 20


class InlinePrompts:
    """Prompts typed in inline mode, by the token of their "generate" button (a start parameter
    holds at most 64 characters of A-Z a-z 0-9 _ -, so the prompt waits here, in memory)."""

    def __init__(self, keep: int = 10_000) -> None:
        self.keep = keep
        self._prompts: OrderedDict[str, tuple[int, str]] = OrderedDict()

    def token(self, user_id: int, prompt: str) -> str:
        token = secrets.token_urlsafe(12)
        self._prompts[token] = (user_id, prompt)
        while len(self._prompts) > self.keep:
            self._prompts.popitem(last=False)
        return token

    def take(self, user_id: int, token: str) -> str | None:
        found = self._prompts.get(token)
        if found is None or found[0] != user_id:
            return None
        del self._prompts[token]
        return found[1]


def matches(query: str, prompt: str) -> bool:
    words = query.casefold().split()
    text = prompt.casefold()
    return all(word in text for word in words)


def inline_result(record: JobRecord) -> InlineQueryResultCachedPhoto | InlineQueryResultCachedDocument | None:
    kind, _, file_id = (record.file_id or "").partition(":")
    caption = short(record.prompt, 1000)
    if kind == "photo":
        return InlineQueryResultCachedPhoto(id=record.job_id, photo_file_id=file_id, caption=caption)
    if kind == "document":
        return InlineQueryResultCachedDocument(
            id=record.job_id,
            title=short(record.prompt, 60),
            document_file_id=file_id,
            caption=caption,
        )
    return None


async def on_inline(
    query: InlineQuery, store: UserStore, sender: Sender, texts: BotTexts, inline_prompts: InlinePrompts, locale: Locale
) -> None:
    text = " ".join(query.query.split())
    user_id = query.from_user.id
    # only the user's own pictures (their history, and the record's word on it): an inline
    # result shares a picture by its file id, so anyone else's would be handed over
    records = [rec for rec in await store.history(user_id, 50) if rec.owned_by(user_id)]
    found: list[InlineQueryResultUnion] = [
        item for item in (inline_result(rec) for rec in records if matches(text, rec.prompt)) if item
    ]
    results = found[:RESULTS]
    if text:
        button = InlineQueryResultsButton(
            text=short(texts.t(locale, "inline-generate", prompt=short(text, 40)), 64),
            start_parameter="g" + inline_prompts.token(query.from_user.id, text),
        )
    else:
        button = InlineQueryResultsButton(text=texts.t(locale, "inline-open"), start_parameter="inline")
    with contextlib.suppress(Exception):  # an answer too late is nobody's loss
        await sender.call(
            0,
            lambda: query.answer(results, cache_time=0, is_personal=True, button=button),
            paced=False,
            attempts=2,
        )


async def on_start_from_inline(
    message: Message,
    command: CommandObject,
    replies: Replies,
    texts: BotTexts,
    intake: PromptIntake,
    inline_prompts: InlinePrompts,
    locale: Locale,
    prefs: UserPrefs,
) -> None:
    args = command.args or ""
    user_id = message.from_user.id if message.from_user else message.chat.id
    if not args.startswith("g"):
        name = message.from_user.first_name if message.from_user else ""
        await replies.reply(
            message.chat.id, texts.t(locale, "start", name=name, generator=texts.generator_text(locale))
        )
        return
    prompt = inline_prompts.take(user_id, args[1:])
    if prompt is None:
        await replies.reply(message.chat.id, texts.t(locale, "inline-expired"))
        return
    await intake.accept_text(
        user_id=user_id,
        chat_id=message.chat.id,
        locale=locale,
        prefs=prefs,
        text=prompt,
        reply_to=message.message_id,
    )


def router() -> Router:
    """Its /start <parameter> goes before the plain /start. The prompts typed in inline mode
    wait in ``inline_prompts`` (workflow data: one per bot)."""
    r = Router(name="inline")
    r.inline_query.register(on_inline)
    r.message.register(on_start_from_inline, CommandStart(deep_link=True))
    return r
