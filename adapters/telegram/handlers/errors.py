"""Errors in one place: an update whose handler failed (the database away or too busy, a bug)
is never dropped without a word.

- Webhook mode: nothing is caught here. The update is answered with an HTTP error, and Telegram
  sends it again, to this or another instance (job ids come from the chat and message, so a
  prompt sent again is one job, not two).
- Polling mode: Telegram counts the update as delivered once it was fetched, so the user is told
  honestly that the message was not taken and should be sent again.
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Router
from aiogram.types import ErrorEvent

from adapters.telegram.i18n import user_locale
from adapters.telegram.replies import Replies

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, replies: Replies) -> None:
    update = event.update
    message = update.message or update.edited_message
    query = update.callback_query
    user = message.from_user if message else (query.from_user if query else None)
    log.warning(
        "update %s not handled (%s); the user is asked to send it again",
        update.update_id,
        type(event.exception).__name__,
        exc_info=event.exception,
    )
    text = replies.t(user_locale(user), "error-internal")
    with contextlib.suppress(Exception):  # (when even that fails, the log says so above)
        if query is not None:
            await replies.answer(query, text, alert=True)
        elif message is not None:
            await replies.reply(message.chat.id, text, reply_to=message.message_id)


def router() -> Router:
    r = Router(name="errors")
    r.errors.register(on_error)
    return r
