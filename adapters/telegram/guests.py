"""Guest mode (Bot API 10.0): a user mentions the bot in any chat, even one it is not a member of
("@bot a lighthouse in a storm"); the bot gets the message as a guest query and answers it once
with ``answerGuestQuery``, which posts one message into that chat: an inline message, edited
later by its ``inline_message_id`` (the bot cannot send to that chat by its id).

- ``GuestAnswers``: which job's status is due as the answer to which guest query (the intake
  notes it before ``AdmitJobs``, the announcer takes it when it opens the status), and the short
  answers that are not a status: a refused prompt, a refused user.
- ``GuestPictures``: the finished picture (or the honest failure) put in place of the status.
  An inline message takes no new upload (the Bot API: "a new file can't be uploaded; use a
  previously uploaded file via its file_id or specify a URL"), so the picture goes first to the
  caller's private chat with the bot, with its buttons (their copy to keep), and the inline
  message is then edited into it by the file id Telegram gave it. A caller who never started a
  chat with the bot cannot get it there: the inline message then says so, and how to fix it.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from typing import Any

from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import BufferedInputFile, InlineQueryResultArticle, InputTextMessageContent

from adapters.telegram import captions
from adapters.telegram.captions import CAPTION_LIMIT, REFUSALS
from adapters.telegram.i18n import UiTexts
from adapters.telegram.keyboards import retry_keyboard, short
from adapters.telegram.options import BotOptions
from adapters.telegram.outside import OutsideMessages
from adapters.telegram.pictures import DeliveryRefused, Picture, picture_keyboard
from adapters.telegram.sender import Priority, Sender
from domain.errors import RecipientGone
from domain.models import Locale
from domain.ports import UserStore

log = logging.getLogger(__name__)


def without_mention(text: str, username: str) -> str:
    """The prompt of a guest message: the text without the bot's @username (anywhere in it), and
    the punctuation written right after it ("@bot, a cat")."""
    mention = f"@{username}".casefold()
    return " ".join(word for word in text.split() if word.casefold().rstrip(",.:;!?") != mention)


class GuestAnswers:
    def __init__(self, outside: OutsideMessages, t: UiTexts, keep: int = 10_000) -> None:
        self.outside = outside
        self.t = t
        self.keep = keep
        self._due: OrderedDict[str, str] = OrderedDict()  # job id -> guest query id

    def expect(self, job_id: str, query_id: str) -> None:
        """The status of ``job_id`` is the answer to guest query ``query_id``."""
        self._due[job_id] = query_id
        while len(self._due) > self.keep:
            self._due.popitem(last=False)

    def take(self, job_id: str) -> str | None:
        """The guest query the status of ``job_id`` answers (once), or None: a chat message."""
        return self._due.pop(job_id, None)

    async def post(
        self, chat_id: int, query_id: str, text: str, locale: Locale, *, result_id: str, markup: Any = None
    ) -> str:
        """Answer the guest query with ``text`` (a message in its chat); its inline message id.
        Raises what Telegram refuses (an answer too late, a second one)."""
        result = InlineQueryResultArticle(
            id=result_id[:64],
            title=self.t(locale, "guest-title"),
            input_message_content=InputTextMessageContent(message_text=text[:4096]),
            reply_markup=markup,
        )
        return await self.outside.answer_guest(chat_id, query_id, result)

    async def refuse(self, chat_id: int, query_id: str, text: str, locale: Locale) -> None:
        """A short answer instead of a picture (a refused prompt or user); best effort."""
        try:
            await self.post(chat_id, query_id, text, locale, result_id=f"no-{query_id}")
        except Exception as exc:  # too late, or answered already: nothing else reaches that chat
            log.info("a guest query could not be answered: %s", type(exc).__name__)


class GuestPictures:
    """A guest job's result, put in place of its status (the job's inline message)."""

    def __init__(
        self, sender: Sender, outside: OutsideMessages, store: UserStore, t: UiTexts, options: BotOptions
    ) -> None:
        self.sender = sender
        self.outside = outside
        self.store = store
        self.t = t
        self.options = options

    async def send_picture(self, picture: Picture) -> None:
        result, record = picture.result, picture.record
        assert record is not None and record.inline_message_id is not None  # (a guest job's)
        caption = captions.caption(self.t, result, picture.locale, picture.negative)
        if result.spoiler:  # flagged by the image check: blurred until tapped, here as in any chat
            caption = f"{self.t(picture.locale, 'result-sensitive')}\n{caption}"[:CAPTION_LIMIT]
        markup = picture_keyboard(self.t, self.options, result, record, picture.locale, url=result.image_url)
        upload = BufferedInputFile(picture.png, filename=f"prompt2pic-{result.job_id[:12]}.png")
        try:  # the caller's own copy first: Telegram then has the file, by its id
            sent = await self.sender.send_photo(
                record.user_id,
                upload,
                caption=caption,
                reply_markup=markup,
                priority=Priority.RESULT,
                has_spoiler=result.spoiler,
            )
        except (RecipientGone, TelegramForbiddenError, TelegramBadRequest) as exc:
            log.info("the picture of guest job %s could not be uploaded: %s", result.job_id, type(exc).__name__)
            me = await self.sender.bot.me()
            text = self.t(picture.locale, "guest-needs-chat", prompt=short(result.prompt, 200), bot=me.username or "")
            await self._say(picture, text, markup=None)
            return
        file_id = sent.photo[-1].file_id if sent.photo else ""
        try:
            await self.outside.edit_inline_photo(
                record.chat_id,
                record.inline_message_id,
                file_id,
                caption=caption,
                reply_markup=markup,
                has_spoiler=result.spoiler,
                on_sent=picture.sent,
            )
        except TelegramBadRequest as exc:  # (the picture is in their private chat; here, the word)
            log.warning("the inline message of %s refused the picture: %s", result.job_id, exc.message)
            await self.fail(picture, "delivery_refused")
            return
        with contextlib.suppress(Exception):  # inline mode shares it by this id later
            await self.store.set_file_id(result.job_id, f"photo:{file_id}")

    async def fail(self, picture: Picture, code: str | None = None) -> None:
        """The honest failure, in place of the status."""
        result = picture.result
        text = captions.failure_text(self.t, result, picture.locale, code)
        refused = (code or (result.error_code.value if result.error_code else "")) in REFUSALS
        await self._say(
            picture, text, markup=None if refused else retry_keyboard(self.t, picture.locale, result.job_id)
        )

    async def _say(self, picture: Picture, text: str, *, markup: Any) -> None:
        record = picture.record
        assert record is not None and record.inline_message_id is not None
        if not await self.outside.edit_inline_text(
            record.chat_id,
            record.inline_message_id,
            text,
            reply_markup=markup,
            priority=Priority.RESULT,
            on_sent=picture.sent,
        ):
            raise DeliveryRefused(job_id=picture.result.job_id)
