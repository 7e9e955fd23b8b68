"""The outgoing side of delivering results in Telegram (the ``ResultChannel`` port; the domain's
``RecordOutcomes`` decides first what a result does to its job): live status from progress
events, and the finished picture (or an honest failure) from results. What it is handed was
checked against the job's record and rebuilt from it (``domain.use_cases.vet``): the chat, the
status message, the prompt, the language and the link (signed by the bot's own storage) are the
record's, never a worker's word.

Every picture is sent. Links follow the link policy (adapters/telegram/links.py): a button only
where Telegram takes it, text in the caption for a public IP address, left out otherwise. When
Telegram still refuses a picture, it is sent again without the part it refused (the link
button, then the keyboard, then the caption, or as a document); when nothing works, the user is
told so in their language. Either way the status message ends (``settle``, once the delivery is
confirmed): deleted once the picture or the failure is in the chat, or left as the failure when
not even a message could be sent and the status was edited into it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge, TelegramNotFound
from aiogram.types import BufferedInputFile, InputMediaDocument, InputMediaPhoto, Message
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters.telegram import captions
from adapters.telegram.captions import CAPTION_LIMIT, REFUSALS, fits_photo
from adapters.telegram.front import Front
from adapters.telegram.keyboards import album_keyboard, cancel_keyboard, result_keyboard, retry_keyboard, short
from adapters.telegram.links import LinkUse, link_use
from adapters.telegram.sender import Priority
from domain.errors import DomainError, StorageError
from domain.models import JobStatus, Locale, Progress, Result, Stage
from domain.users import JobRecord, SendAs, UserPrefs

log = logging.getLogger(__name__)

MAX_TRIES = 6  # sends of one picture, each without something Telegram refused


class DeliveryRefused(DomainError):
    """Telegram refuses the message for good (bad request): retrying would loop forever."""

    code = "delivery_refused"


async def _all_sent(pictures: list[_Picture]) -> None:
    for picture in pictures:
        await picture.sent()


@dataclass
class _Picture:
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


class TelegramNotifier:
    def __init__(self, front: Front) -> None:
        self.front = front
        self.t = front.t
        self.sender = front.sender
        self.board = front.board
        self.store = front.store
        self.storage_attempts = 3
        self.storage_backoff_s = 0.5
        self._status_is_failure: set[str] = set()  # jobs whose status message became the failure

    # --- progress --------------------------------------------------------------------------------
    def observed(self, event: Progress) -> None:
        if event.worker_id:
            self.front.workers_seen[event.worker_id] = max(self.front.workers_seen.get(event.worker_id, 0.0), event.at)
        if event.stage == Stage.STARTED:
            self.front.estimator.started(event.worker_id, event.job_id, event.at, event.seconds_per_image)
        elif event.stage == Stage.GENERATING:
            self.front.estimator.progressed(
                event.worker_id, event.job_id, event.step, event.total_steps, event.at, event.seconds_per_image
            )

    async def progress(self, event: Progress, record: JobRecord) -> None:
        """The live status of an active job (RecordOutcomes marked it running, and decided it is
        shown): where and what from the record, how far from the event."""
        if self.board.is_closed(record.job_id):
            return
        # (no message: the status could not be sent; blocked the bot: nothing more goes there)
        if record.status_message_id is None or not self.sender.is_reachable(record.chat_id):
            return
        text, percent = self.front.progress_text(
            record.locale, record.prompt, event.stage, event.step, event.total_steps
        )
        markup = None if event.stage == Stage.UPLOADING else cancel_keyboard(self.t, record.locale, record.job_id)
        self.board.show(
            record.job_id,
            record.chat_id,
            record.status_message_id,
            text,
            markup,
            stage=event.stage,
            percent=percent,
        )

    # --- results ----------------------------------------------------------------------------------
    def caption(self, result: Result, locale: Locale, negative: str = "", link: str | None = None) -> str:
        return captions.caption(self.t, result, locale, negative, link)

    # --- the ResultChannel port (RecordOutcomes decided that the result goes out) --------------
    def arrived(self, result: Result) -> None:
        self.board.close(result.job_id)
        self.front.observe_result(result)

    def counted(self, result: Result) -> None:
        self.front.safety.saw_result(result.error_code.value if result.error_code else None, result.spoiler)

    def dropped(self, job_id: str) -> None:
        self.front.albums.drop(job_id)

    def is_reachable(self, chat_id: int) -> bool:
        return self.sender.is_reachable(chat_id)

    async def send(
        self, result: Result, record: JobRecord | None, prefs: UserPrefs, sent: Callable[[], Awaitable[None]]
    ) -> None:
        with self.sender.serving(result.accepted_at):  # oldest first, across the whole backlog
            await self._send(result, record, prefs, sent)

    async def _send(
        self, result: Result, record: JobRecord | None, prefs: UserPrefs, sent: Callable[[], Awaitable[None]]
    ) -> None:
        locale = prefs.locale or result.locale
        picture = _Picture(result, record, locale, prefs.send_as, sent)
        try:
            if result.status == JobStatus.DONE and result.image_key:
                try:
                    picture.png = await self._read_image(result.image_key)
                except KeyError:  # gone from storage: say so instead of retrying forever
                    log.warning("image of %s is missing from storage", result.job_id)
                    self.front.albums.drop(result.job_id)
                    await self._fail(result, locale, sent, "storage_unavailable")
                    return
                except StorageError:  # DeliverResults tries again later; the album goes on
                    self.front.albums.drop(result.job_id)
                    raise
                batch = await self.front.albums.collect(result.job_id, picture)
                if batch is None:
                    await self._send_picture(picture)
                elif batch.items:
                    try:
                        await self._send_album(batch.items)
                    except BaseException as exc:
                        batch.done(exc)
                        raise
                    batch.done()
                return  # (an empty batch: another handler sent this picture with its album)
            self.front.albums.drop(result.job_id)
            await self._fail(result, locale, sent)
        except TelegramNotFound as exc:
            log.warning("Telegram refused result %s: %s", result.job_id, exc.message)
            raise DeliveryRefused(job_id=result.job_id) from exc

    async def settle(self, result: Result) -> None:
        """The picture (or the failure) is out: the live status goes (unless it became the
        failure itself). Also for a result that a bot killed before this step sent; a status
        already gone is fine."""
        self.board.close(result.job_id)
        if result.job_id in self._status_is_failure:
            self._status_is_failure.discard(result.job_id)
            return
        message_id = result.status_message_id
        if message_id is None:  # published before the status reply was recorded (the outbox)
            record = await self.store.get_job(result.job_id)
            message_id = record.status_message_id if record else None
        if message_id is not None:
            await self.sender.delete(result.chat_id, message_id)

    async def _read_image(self, key: str) -> bytes:
        """The stored PNG, retried on storage errors like the worker's writes (a missing object
        is final: ``KeyError``; an outage past the retries: ``StorageError``, and
        DeliverResults tries the delivery again later)."""

        def retrying(state: RetryCallState) -> None:  # before the pause after a failed try, not the last
            code = getattr(state.outcome.exception() if state.outcome else None, "code", "")
            log.info("reading %s failed (%s, try %d/%d)", key, code, state.attempt_number, self.storage_attempts)

        reads = AsyncRetrying(
            stop=stop_after_attempt(self.storage_attempts),
            wait=wait_exponential(multiplier=self.storage_backoff_s),  # backoff, 2x, 4x, ... no cap
            retry=retry_if_exception_type(StorageError),
            before_sleep=retrying,
            reraise=True,
        )
        return await reads(self.front.storage.get, key)

    # --- failures ---------------------------------------------------------------------------------
    def failure_text(self, result: Result, locale: Locale, code: str | None = None) -> str:
        return captions.failure_text(self.t, result, locale, code)

    async def _fail(
        self,
        result: Result,
        locale: Locale,
        sent: Callable[[], Awaitable[None]],
        code: str | None = None,
    ) -> None:
        """Tell the user; when not even a message gets through, the status message becomes the
        failure (and ``settle`` leaves it)."""
        text = self.failure_text(result, locale, code)
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
            self._status_is_failure.add(result.job_id)

    # --- one picture -----------------------------------------------------------------------------
    def _markup(self, picture: _Picture, *, document: bool, level: int, url: str | None) -> object:
        """The keyboard at a level of caution: 0 all buttons, 1 without the link, 2 none."""
        if level >= 2:
            return None
        share = short(picture.result.prompt, 64) if picture.result.chat_id > 0 else None
        return result_keyboard(
            self.t,
            picture.locale,
            picture.result.job_id,
            url if level == 0 else None,
            with_png=not document,
            variations=self.front.config.variations,
            report=self.front.receives_reports,
            share=share,
        )

    async def _send_picture(self, picture: _Picture) -> None:
        result = picture.result
        url = result.image_url
        use = link_use(url)
        caption = self.caption(result, picture.locale, picture.negative, url if use == LinkUse.TEXT else None)
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
        await self._sent(picture, message)

    async def _send_file(
        self,
        picture: _Picture,
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

    async def _sent(self, picture: _Picture, message: Message | None) -> None:
        result = picture.result
        file_id = None
        if message is not None and message.photo:
            file_id = f"photo:{message.photo[-1].file_id}"
        elif message is not None and message.document:
            file_id = f"document:{message.document.file_id}"
        if file_id:
            await self.store.set_file_id(result.job_id, file_id)
        self.front.estimator.delivered(max(0.0, time.time() - result.finished_at))

    async def _refused(self, picture: _Picture, why: str) -> None:
        log.warning("Telegram refused the picture of %s for good: %s", picture.result.job_id, why)
        await self._fail(picture.result, picture.locale, picture.sent, "delivery_refused")

    # --- albums ----------------------------------------------------------------------------------
    async def _send_album(self, pictures: list[_Picture]) -> None:
        """2-10 pictures in one message, their buttons in a follow-up message (albums take
        none); one picture alone, or an album Telegram refuses, goes the single way."""
        if len(pictures) < 2:
            for picture in pictures:
                await self._send_picture(picture)
            return
        first = pictures[0]
        document = any(p.as_document for p in pictures)
        media: list[InputMediaPhoto | InputMediaDocument] = []
        for n, picture in enumerate(pictures, 1):
            result = picture.result
            use = link_use(result.image_url)
            caption = f"{n}. " + self.caption(
                result, picture.locale, picture.negative, result.image_url if use == LinkUse.TEXT else None
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
                await self._send_picture(picture)
            return
        for picture, message in zip(pictures, messages, strict=False):
            await self._sent(picture, message)
        await self._album_buttons(pictures, messages)

    async def _album_buttons(self, pictures: list[_Picture], messages: list[Message]) -> None:
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
