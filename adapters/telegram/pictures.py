"""Finished pictures on their way to the chat (``TelegramResultChannel`` hands them here): one
picture with its caption and buttons, sent again without whatever Telegram refused; an album of
variations with its buttons in a follow-up message; an honest failure when nothing goes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge, TelegramNotFound
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, InputMediaDocument, InputMediaPhoto, Message

from adapters.telegram import captions
from adapters.telegram.captions import CAPTION_LIMIT, REFUSALS, fits_photo
from adapters.telegram.copy_prompt import copyable_prompt
from adapters.telegram.i18n import UiTexts
from adapters.telegram.keyboards import album_keyboard, result_keyboard, retry_keyboard, short
from adapters.telegram.links import LinkUse, link_use
from adapters.telegram.options import BotOptions
from adapters.telegram.sender import Priority, Sender
from domain.errors import DomainError
from domain.models import Locale, Result
from domain.ports import UserStore
from domain.use_cases.watch import WatchWorkers
from domain.users import JobRecord, SendAs

log = logging.getLogger(__name__)

MAX_TRIES = 6  # sends of one picture, each without something Telegram refused


class DeliveryRefused(DomainError):
    """Telegram refuses the message for good (bad request): retrying would loop forever."""

    code = "delivery_refused"


async def _all_sent(pictures: list[Picture]) -> None:
    for picture in pictures:
        await picture.sent()


@dataclass
class Picture:
    """One finished picture on its way to the chat."""

    result: Result
    record: JobRecord | None
    locale: Locale
    send_as: SendAs
    sent: Callable[[], Awaitable[None]]  # the moment Telegram took it (the delivery confirms)
    png: bytes = b""

    @property
    def negative(self) -> str:
        return self.record.negative_prompt if self.record else ""

    @property
    def reply_to(self) -> int | None:
        # In groups the picture answers the message that asked; in a private chat it is plain.
        if self.result.chat_id < 0 and self.record is not None:
            return self.record.request_message_id
        return None

    @property
    def as_document(self) -> bool:
        # A flagged picture goes as a photo, the only kind Telegram can hide behind a spoiler.
        wants_file = self.send_as == SendAs.DOCUMENT and not self.result.spoiler
        return wants_file or not fits_photo(self.result.width, self.result.height, len(self.png))


def picture_keyboard(
    t: UiTexts,
    options: BotOptions,
    result: Result,
    record: JobRecord | None,
    locale: Locale,
    *,
    url: str | None,
    document: bool = False,
    share: str | None = None,
) -> InlineKeyboardMarkup:
    """The buttons under one picture, its "copy prompt" button included: the prompt and the
    parameters it was asked with (the record's size, seed, quality and negative prompt)."""
    negative = record.negative_prompt if record else ""
    width, height = (record.width, record.height) if record else (result.width, result.height)
    copy = copyable_prompt(
        record.prompt if record else result.prompt,
        negative=negative,
        width=width,
        height=height,
        seed=record.seed if record else result.seed,
        quality=record.quality if record else None,
    )
    return result_keyboard(
        t,
        locale,
        result.job_id,
        url,
        with_png=not document,
        variations=options.variations,
        report=options.receives_reports,
        share=share,
        copy=copy,
    )


class PictureSender:
    """One picture (or the failure) to its chat."""

    def __init__(self, sender: Sender, store: UserStore, t: UiTexts, options: BotOptions, watch: WatchWorkers) -> None:
        self.sender = sender
        self.store = store
        self.t = t
        self.options = options
        self.watch = watch
        self.status_is_failure: set[str] = set()  # jobs whose status message became the failure

    async def fail(
        self,
        result: Result,
        locale: Locale,
        sent: Callable[[], Awaitable[None]],
        code: str | None = None,
    ) -> None:
        """Tell the user; when not even a message gets through, the status message becomes the
        failure (and ``settle`` leaves it)."""
        text = captions.failure_text(self.t, result, locale, code)
        refused = (code or (result.error_code.value if result.error_code else "")) in REFUSALS
        try:
            await self.sender.send_message(
                result.chat_id,
                text,
                priority=Priority.RESULT,
                reply_markup=None if refused else retry_keyboard(self.t, locale, result.job_id),
                on_sent=sent,
            )
        except (TelegramBadRequest, TelegramNotFound) as exc:
            log.warning("the failure of %s could not be sent (%s)", result.job_id, exc.message)
            if result.status_message_id is None or not await self.sender.edit_text(
                result.chat_id,
                result.status_message_id,
                text,
                priority=Priority.RESULT,
                on_sent=sent,
            ):
                raise DeliveryRefused(job_id=result.job_id) from exc
            self.status_is_failure.add(result.job_id)

    def _markup(self, picture: Picture, *, document: bool, level: int, url: str | None) -> object:
        """The keyboard at a level of caution: 0 all buttons, 1 without the link, 2 none."""
        if level >= 2:
            return None
        share = short(picture.result.prompt, 64) if picture.result.chat_id > 0 else None
        return picture_keyboard(
            self.t,
            self.options,
            picture.result,
            picture.record,
            picture.locale,
            url=url if level == 0 else None,
            document=document,
            share=share,
        )

    async def send_picture(self, picture: Picture) -> None:
        result = picture.result
        url = result.image_url
        use = link_use(url)
        caption = captions.caption(
            self.t, result, picture.locale, picture.negative, url if use == LinkUse.TEXT else None
        )
        if result.spoiler:
            caption = f"{self.t(picture.locale, 'result-sensitive')}\n{caption}"[:CAPTION_LIMIT]
        upload = BufferedInputFile(picture.png, filename=f"prompt2pic-{result.job_id[:12]}.png")
        document, level, tries = picture.as_document, 0, 0
        while True:
            tries += 1
            markup = self._markup(picture, document=document, level=level, url=url)
            try:
                message = await self._send_file(picture, upload, document=document, caption=caption, markup=markup)
                break
            except TelegramEntityTooLarge as exc:
                if document or tries >= MAX_TRIES:
                    return await self._refused(picture, exc.message)
                document = True
            except TelegramBadRequest as exc:
                what = exc.message.lower()
                log.info("Telegram refused the picture of %s: %s", result.job_id, exc.message)
                if "chat not found" in what or "not enough rights" in what:
                    raise DeliveryRefused(job_id=result.job_id) from exc  # nothing else would go either
                if tries >= MAX_TRIES:
                    return await self._refused(picture, exc.message)
                if markup is not None and any(w in what for w in ("button", "markup", "keyboard")):
                    level += 1
                elif caption and any(w in what for w in ("caption", "entities", "too long")):
                    caption = ""
                elif not document:
                    document = True  # PHOTO_INVALID_DIMENSIONS, IMAGE_PROCESS_FAILED, ...
                elif markup is not None:
                    level += 1
                elif caption:
                    caption = ""
                else:
                    return await self._refused(picture, exc.message)
        await self.record_sent(picture, message)

    async def _send_file(
        self,
        picture: Picture,
        upload: BufferedInputFile,
        *,
        document: bool,
        caption: str,
        markup: object,
    ) -> Message:
        chat_id = picture.result.chat_id
        if document:
            async with self.sender.chat_action(chat_id, "upload_document"):
                return await self.sender.send_document(
                    chat_id,
                    upload,
                    caption=caption,
                    reply_markup=markup,
                    reply_to=picture.reply_to,
                    on_sent=picture.sent,
                )
        async with self.sender.chat_action(chat_id, "upload_photo"):
            return await self.sender.send_photo(
                chat_id,
                upload,
                caption=caption,
                reply_markup=markup,
                reply_to=picture.reply_to,
                has_spoiler=picture.result.spoiler,
                on_sent=picture.sent,
            )

    async def record_sent(self, picture: Picture, message: Message | None) -> None:
        result = picture.result
        file_id = None
        if message is not None and message.photo:
            file_id = f"photo:{message.photo[-1].file_id}"
        elif message is not None and message.document:
            file_id = f"document:{message.document.file_id}"
        if file_id:
            await self.store.set_file_id(result.job_id, file_id)
        self.watch.delivered(time.time() - result.finished_at)

    async def _refused(self, picture: Picture, why: str) -> None:
        log.warning("Telegram refused the picture of %s for good: %s", picture.result.job_id, why)
        await self.fail(picture.result, picture.locale, picture.sent, "delivery_refused")


class AlbumSender:
    """Variations that go out together."""

    def __init__(self, single: PictureSender) -> None:
        self.single = single  # one by one, when an album will not go
        self.sender = single.sender
        self.t = single.t

    async def send(self, pictures: list[Picture]) -> None:
        """2-10 pictures in one message, their buttons in a follow-up message (albums take
        none); one picture alone, or an album Telegram refuses, goes the single way."""
        if len(pictures) < 2:
            for picture in pictures:
                await self.single.send_picture(picture)
            return
        first = pictures[0]
        document = any(p.as_document for p in pictures)
        media: list[InputMediaPhoto | InputMediaDocument] = []
        for n, picture in enumerate(pictures, 1):
            result = picture.result
            use = link_use(result.image_url)
            caption = f"{n}. " + captions.caption(
                self.t, result, picture.locale, picture.negative, result.image_url if use == LinkUse.TEXT else None
            )
            upload = BufferedInputFile(picture.png, filename=f"prompt2pic-{result.job_id[:12]}.png")
            item = InputMediaDocument if document else InputMediaPhoto
            media.append(item(media=upload, caption=caption[:CAPTION_LIMIT]))
        chat_id = first.result.chat_id
        try:
            async with self.sender.chat_action(chat_id, "upload_document" if document else "upload_photo"):
                messages = await self.sender.send_album(
                    chat_id,
                    media,
                    reply_to=first.reply_to,
                    on_sent=lambda: _all_sent(pictures),
                )
        except (TelegramBadRequest, TelegramEntityTooLarge) as exc:
            log.info("album of %s refused (%s): sending the pictures one by one", first.result.job_id, exc.message)
            for picture in pictures:
                await self.single.send_picture(picture)
            return
        for picture, message in zip(pictures, messages, strict=False):
            await self.single.record_sent(picture, message)
        await self._album_buttons(pictures, messages)

    async def _album_buttons(self, pictures: list[Picture], messages: list[Message]) -> None:
        first = pictures[0]
        share = short(first.result.prompt, 64) if first.result.chat_id > 0 else None
        text = self.t(first.locale, "album-buttons", count=len(pictures), prompt=short(first.result.prompt, 200))
        job_ids = [p.result.job_id for p in pictures]
        urls: list[str | None] = [p.result.image_url for p in pictures]
        for level in (0, 1):
            links: list[str | None] = urls if level == 0 else [None] * len(urls)
            markup = album_keyboard(self.t, first.locale, job_ids, links, share=share)
            try:
                await self.sender.send_message(
                    first.result.chat_id,
                    text,
                    reply_markup=markup,
                    reply_to=messages[0].message_id if messages else None,
                    priority=Priority.RESULT,
                )
                return
            except TelegramBadRequest as exc:
                log.info("buttons of the album of %s refused: %s", first.result.job_id, exc.message)
