"""The outgoing side as the deliver-results use case sees it (the ``Notifier`` port): live status
from progress events, and the finished picture (or an honest failure) from results."""

from __future__ import annotations

import asyncio
import logging

from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge, TelegramNotFound
from aiogram.types import BufferedInputFile

from adapters.telegram.front import Front
from adapters.telegram.keyboards import cancel_keyboard, result_keyboard, retry_keyboard, short
from adapters.telegram.sender import Priority
from adapters.telegram.understood import understood_lines
from domain.errors import DomainError, RecipientGone, StorageError
from domain.models import JobStatus, Locale, Progress, Result
from domain.users import JobState, Outcome, SendAs

log = logging.getLogger(__name__)

# Telegram's limits for a photo; beyond them the picture goes as a document (up to 50 MB).
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20.0
CAPTION_LIMIT = 1024
# Results refused for content: their message (which never repeats the prompt).
REFUSALS = {"prompt_refused": "error-prompt_refused", "image_refused": "refused-image"}


class DeliveryRefused(DomainError):
    """Telegram refuses the message for good (bad request): retrying would loop forever."""

    code = "delivery_refused"


def fits_photo(width: int, height: int, size_bytes: int) -> bool:
    if width <= 0 or height <= 0:
        return False
    return (
        size_bytes < PHOTO_MAX_BYTES
        and width + height <= PHOTO_MAX_SIDES_SUM
        and max(width, height) / min(width, height) <= PHOTO_MAX_RATIO
    )


class TelegramNotifier:
    def __init__(self, front: Front) -> None:
        self.front = front
        self.t = front.t
        self.sender = front.sender
        self.board = front.board
        self.store = front.store
        self.storage_attempts = 3
        self.storage_backoff_s = 0.5

    # --- progress --------------------------------------------------------------------------------
    async def progress(self, event: Progress) -> None:
        if event.worker_id:
            self.front.workers_seen[event.worker_id] = max(
                self.front.workers_seen.get(event.worker_id, 0.0), event.at
            )
        if self.board.is_closed(event.job_id):
            return
        record = await self.store.get_job(event.job_id)
        if record is not None and not record.active:
            return  # cancelled or finished: its status says so already
        if event.stage == "started":
            await self.store.mark_started(event.job_id, event.at, event.worker_id)
        # A job the outbox published before its status reply was recorded: the record knows it.
        message_id = event.status_message_id or (record.status_message_id if record else None)
        if message_id is None:
            return
        prompt = record.prompt if record else ""
        text, percent = self.front.progress_text(
            event.locale, prompt, event.stage, event.step, event.total_steps
        )
        markup = None if event.stage == "uploading" else cancel_keyboard(self.t, event.locale, event.job_id)
        self.board.show(
            event.job_id, event.chat_id, message_id, text, markup,
            stage=event.stage, percent=percent,
        )

    # --- results ----------------------------------------------------------------------------------
    def caption(self, result: Result, locale: Locale, negative: str = "") -> str:
        reason = result.profile_reason or ""
        reason_key = f"quality-reason-{reason}"
        reason_text = self.t(locale, reason_key) if self.t.has(reason_key, locale) else reason
        profile = result.profile or ""
        profile_key = f"quality-{profile}"
        profile_text = self.t(locale, profile_key) if profile and self.t.has(profile_key, locale) else profile
        details = self.t(
            locale,
            "result-details",
            seed=str(result.seed),
            width=str(result.width),
            height=str(result.height),
            profile=profile_text,
            reason=reason_text,
            seconds=f"{result.timings.total_s:.1f}",
        )
        extra = ("\n" + self.t(locale, "result-negative", negative=short(negative, 200))) if negative else ""
        understood = understood_lines(self.t, locale, result)  # "understood as", CLIP's cut
        extra += f"\n{understood}" if understood else ""
        room = CAPTION_LIMIT - len(details) - len(extra) - 1
        return f"{short(result.prompt, max(20, room))}{extra}\n{details}"[:CAPTION_LIMIT]

    async def deliver(self, result: Result) -> None:
        self.board.close(result.job_id)
        service = result.timings.generation_s + result.timings.upload_s
        if result.status == JobStatus.DONE:
            self.front.observe_result(result.finished_at, service, result.worker_id)
        record = await self.store.get_job(result.job_id)
        was_cancelled = record is not None and record.state == JobState.CANCELLED
        await self.store.finish(result.job_id, Outcome.from_result(result))
        if was_cancelled:
            log.info("result %s dropped: the job was cancelled", result.job_id)
            return
        self.front.safety.saw_result(result.error_code.value if result.error_code else None, result.spoiler)
        prefs = await self.store.get_prefs(result.user_id)
        locale = prefs.locale or result.locale
        try:
            if result.status == JobStatus.DONE and result.image_key:
                await self._send_picture(result, locale, prefs.send_as, record.negative_prompt if record else "")
            else:
                await self._send_failure(result, locale)
        except RecipientGone:
            await self.store.mark_blocked(result.user_id, self.front.clock())
            raise
        except (TelegramBadRequest, TelegramNotFound, TelegramEntityTooLarge) as exc:
            log.warning("Telegram refused result %s: %s", result.job_id, exc.message)
            raise DeliveryRefused(job_id=result.job_id) from exc

    async def settle(self, result: Result) -> None:
        """The picture (or the failure) is out: the live status goes. Also for a result that a
        bot killed before this step sent; a status already gone is fine."""
        self.board.close(result.job_id)
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
        delay = self.storage_backoff_s
        for attempt in range(1, self.storage_attempts + 1):
            try:
                return await self.front.storage.get(key)
            except StorageError as exc:
                if attempt == self.storage_attempts:
                    raise
                log.info("reading %s failed (%s, try %d/%d)", key, exc.code, attempt, self.storage_attempts)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_failure(self, result: Result, locale: Locale, code: str | None = None) -> None:
        code = code or (result.error_code.value if result.error_code else "generation_failed")
        if code in REFUSALS:  # no prompt repeated, no "try again": the same prompt is refused again
            await self.sender.send_message(result.chat_id, self.t(locale, REFUSALS[code]), priority=Priority.RESULT)
            return
        reason = self.t(locale, f"reason-{code}") if self.t.has(f"reason-{code}", locale) else code
        await self.sender.send_message(
            result.chat_id,
            self.t(locale, "failed", reason=reason, prompt=short(result.prompt, 200)),
            reply_markup=retry_keyboard(self.t, locale, result.job_id),
            priority=Priority.RESULT,
        )

    async def _send_picture(self, result: Result, locale: Locale, send_as: SendAs, negative: str) -> None:
        assert result.image_key
        try:
            png = await self._read_image(result.image_key)
        except KeyError:  # gone from storage: say so instead of retrying forever
            log.warning("image of %s is missing from storage", result.job_id)
            await self._send_failure(result, locale, "storage_unavailable")
            return
        # A flagged picture goes as a photo, the only kind Telegram can hide behind a spoiler.
        as_document = (send_as == SendAs.DOCUMENT and not result.spoiler) or not fits_photo(
            result.width, result.height, len(png)
        )
        caption = self.caption(result, locale, negative)
        if result.spoiler:
            caption = f"{self.t(locale, 'result-sensitive')}\n{caption}"[:CAPTION_LIMIT]
        markup = result_keyboard(
            self.t, locale, result.job_id, result.image_url, with_png=not as_document,
            variations=self.front.config.variations,
        )
        upload = BufferedInputFile(png, filename=f"prompt2pic-{result.job_id[:12]}.png")
        if as_document:
            async with self.sender.chat_action(result.chat_id, "upload_document"):
                await self.sender.send_document(result.chat_id, upload, caption=caption, reply_markup=markup)
            return
        try:
            async with self.sender.chat_action(result.chat_id, "upload_photo"):
                await self.sender.send_photo(
                    result.chat_id, upload, caption=caption, reply_markup=markup, has_spoiler=result.spoiler
                )
        except (TelegramBadRequest, TelegramEntityTooLarge) as exc:  # a photo Telegram will not take
            log.info("photo of %s refused (%s): sending it as a document", result.job_id, exc.message)
            markup = result_keyboard(
                self.t, locale, result.job_id, result.image_url, with_png=False,
                variations=self.front.config.variations,
            )
            async with self.sender.chat_action(result.chat_id, "upload_document"):
                await self.sender.send_document(result.chat_id, upload, caption=caption, reply_markup=markup)
