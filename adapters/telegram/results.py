"""The outgoing side of delivering results in Telegram (the ``ResultChannel`` port; the domain's
``RecordOutcomes`` decides first what a result does to its job): live status from progress
events, and the finished picture (or an honest failure) from results. What it is handed was
checked against the job's record and rebuilt from it (``domain.use_cases.vet``): the chat, the
status message, the prompt, the language and the link (signed by the bot's own storage) are the
record's, never a worker's word.

Every picture is sent (adapters/telegram/pictures.py). Links follow the link policy
(adapters/telegram/links.py): a button only where Telegram takes it, text in the caption for a
public IP address, left out otherwise. When Telegram still refuses a picture, it is sent again
without the part it refused (the link button, then the keyboard, then the caption, or as a
document); when nothing works, the user is told so in their language. Either way the status
message ends (``settle``, once the delivery is confirmed): deleted once the picture or the
failure is in the chat, or left as the failure when not even a message could be sent and the
status was edited into it. A job asked for in guest mode (its record has an inline message id)
gets its live status, its picture and its failure in that one inline message, in place
(``guests.GuestPictures``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiogram.exceptions import TelegramNotFound
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters.telegram.albums import Albums
from adapters.telegram.guests import GuestPictures
from adapters.telegram.keyboards import cancel_keyboard
from adapters.telegram.pictures import AlbumSender, DeliveryRefused, Picture, PictureSender
from adapters.telegram.sender import Sender
from adapters.telegram.status import StatusBoard
from adapters.telegram.texts import BotTexts
from domain.errors import StorageError
from domain.models import JobStatus, Progress, Result, Stage
from domain.ports import Storage, UserStore
from domain.safety import SafetyTally
from domain.users import JobRecord, UserPrefs

log = logging.getLogger(__name__)


class TelegramResultChannel:
    def __init__(
        self,
        *,
        sender: Sender,
        board: StatusBoard,
        store: UserStore,
        storage: Storage,
        albums: Albums,
        texts: BotTexts,
        safety: SafetyTally,
        pictures: PictureSender,
        guests: GuestPictures,
    ) -> None:
        self.sender = sender
        self.guests = guests
        self.board = board
        self.store = store
        self.storage = storage
        self.albums = albums
        self.texts = texts
        self.watch = texts.watch
        self.safety = safety
        self.pictures = pictures
        self.album_sender = AlbumSender(pictures)
        self.storage_attempts = 3
        self.storage_backoff_s = 0.5

    # --- progress --------------------------------------------------------------------------------
    def observed(self, event: Progress) -> None:
        self.watch.progressed(event)

    async def progress(self, event: Progress, record: JobRecord) -> None:
        """The live status of an active job (RecordOutcomes marked it running, and decided it is
        shown): where and what from the record, how far from the event."""
        if self.board.is_closed(record.job_id):
            return
        # (no message: the status could not be sent; blocked the bot: nothing more goes there)
        if record.inline_message_id is None and (
            record.status_message_id is None or not self.sender.is_reachable(record.chat_id)
        ):
            return
        text, percent = self.texts.progress_text(
            record.locale, record.prompt, event.stage, event.step, event.total_steps
        )
        markup = None if event.stage == Stage.UPLOADING else cancel_keyboard(self.texts.t, record.locale, record.job_id)
        self.board.show(
            record.job_id,
            record.chat_id,
            record.status_message_id or 0,
            text,
            markup,
            stage=event.stage,
            percent=percent,
            inline_id=record.inline_message_id,
        )

    # --- the ResultChannel port (RecordOutcomes decided that the result goes out) --------------
    def arrived(self, result: Result) -> None:
        self.board.close(result.job_id)
        self.watch.finished(result)

    def counted(self, result: Result) -> None:
        self.safety.saw_result(result.error_code.value if result.error_code else None, result.spoiler)

    def dropped(self, job_id: str) -> None:
        self.albums.drop(job_id)

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
        picture = Picture(result, record, locale, prefs.send_as, sent)
        try:
            if result.status == JobStatus.DONE and result.image_key:
                try:
                    picture.png = await self._read_image(result.image_key)
                except KeyError:  # gone from storage: say so instead of retrying forever
                    log.warning("image of %s is missing from storage", result.job_id)
                    self.albums.drop(result.job_id)
                    await self._fail(picture, "storage_unavailable")
                    return
                except StorageError:  # DeliverResults tries again later; the album goes on
                    self.albums.drop(result.job_id)
                    raise
                await self._picture_or_album(picture)
                return
            self.albums.drop(result.job_id)
            await self._fail(picture)
        except TelegramNotFound as exc:
            log.warning("Telegram refused result %s: %s", result.job_id, exc.message)
            raise DeliveryRefused(job_id=result.job_id) from exc

    async def _fail(self, picture: Picture, code: str | None = None) -> None:
        if picture.record is not None and picture.record.inline_message_id is not None:
            await self.guests.fail(picture, code)
        else:
            await self.pictures.fail(picture.result, picture.locale, picture.sent, code)

    async def _picture_or_album(self, picture: Picture) -> None:
        """A picture alone goes at once; one of an album waits for the others (``Albums``), and
        the handler that holds the last of them sends them all. A guest job's goes in place of
        its status."""
        if picture.record is not None and picture.record.inline_message_id is not None:
            await self.guests.send_picture(picture)
            return
        batch = await self.albums.collect(picture.result.job_id, picture)
        if batch is None:
            await self.pictures.send_picture(picture)
        elif batch.items:
            try:
                await self.album_sender.send(batch.items)
            except BaseException as exc:
                batch.done(exc)
                raise
            batch.done()
        # (an empty batch: another handler sent this picture with its album)

    async def settle(self, result: Result) -> None:
        """The picture (or the failure) is out: the live status goes (unless it became the
        failure itself). Also for a result that a bot killed before this step sent; a status
        already gone is fine."""
        self.board.close(result.job_id)
        if result.job_id in self.pictures.status_is_failure:
            self.pictures.status_is_failure.discard(result.job_id)
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
        return await reads(self.storage.get, key)
