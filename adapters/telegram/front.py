"""The Telegram front's service object: what the handlers do, independent of how an update came in
(polling or webhook) and of which handler caught it. Handlers get it from the dispatcher's
workflow data as ``front``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiogram.exceptions import TelegramBadRequest, TelegramEntityTooLarge
from aiogram.types import BufferedInputFile

from adapters.telegram.albums import Albums
from adapters.telegram.i18n import Translator
from adapters.telegram.keyboards import cancel_keyboard, short
from adapters.telegram.paste import SplitPaste
from adapters.telegram.sender import Priority, Sender
from adapters.telegram.status import StatusBoard, progress_bar
from domain.errors import DomainError, InvalidRequest, PromptRefused, QueueUnavailable, RecipientGone
from domain.models import Cancel, Job, Locale, Quality, Stage, job_id_for
from domain.params import AspectRatio, parse_aspect, parse_prompt, size_for_aspect
from domain.ports import JobQueue, Storage
from domain.safety import SafetyTally
from domain.services import SubmitPrompt
from domain.users import (
    AlreadyAccepted,
    JobRecord,
    JobState,
    LimitExceeded,
    Outcome,
    SendAs,
    TooManyJobsInFlight,
    UserLimits,
    UserPrefs,
    UserStore,
)
from domain.waits import WaitEstimator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrontConfig:
    limits: UserLimits = UserLimits()
    admins: frozenset[int] = frozenset()
    allowed: frozenset[int] = frozenset()  # empty: everyone
    variations: int = 3
    history_size: int = 10
    admin_chat_id: int = 0  # where users' reports go (0: every admin's own chat)
    split_join_s: float = 1.5  # parts of a client-split paste arriving this close are joined
    album_wait_s: float = 30.0  # how long a finished variation waits for the others of its album
    # What links the bot can give (adapters/telegram/links.py): set by the runtime from storage.
    links: str = "none"  # button | text | none


@dataclass
class Front:
    submit: SubmitPrompt
    queue: JobQueue
    storage: Storage
    store: UserStore
    sender: Sender
    t: Translator
    board: StatusBoard
    config: FrontConfig = FrontConfig()
    estimator: WaitEstimator = field(default_factory=WaitEstimator)
    clock: Callable[[], float] = time.time
    seed_source: Callable[[], int] = lambda: random.randint(0, 2**32 - 1)
    workers_seen: dict[str, float] = field(default_factory=dict)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    safety: SafetyTally = field(default_factory=SafetyTally)  # for /stats
    paste: SplitPaste = field(default_factory=SplitPaste)
    albums: Albums = field(default_factory=Albums)
    _chat_locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paste.window_s = self.config.split_join_s
        self.albums.wait_s = self.config.album_wait_s

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background (kept referenced until it ends)."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # --- who may do what ----------------------------------------------------------------------
    def is_admin(self, user_id: int) -> bool:
        return user_id in self.config.admins

    def is_allowed(self, user_id: int) -> bool:
        return not self.config.allowed or user_id in self.config.allowed or self.is_admin(user_id)

    # --- texts ----------------------------------------------------------------------------------
    def duration(self, locale: Locale, seconds: float) -> str:
        seconds = max(1, round(seconds))
        if seconds < 90:
            return self.t(locale, "duration-seconds", n=seconds)
        return self.t(locale, "duration-minutes", n=-(-seconds // 60))

    def eta(self, locale: Locale, seconds: float | None, *, unknown: str = "eta-unknown") -> str:
        """An estimate ("about 15 s"), rounded as coarsely as it is known: 5 s steps under two
        minutes, then minutes; "not known yet" before the first batch was seen."""
        if seconds is None:
            return self.t(locale, unknown)
        if seconds <= 10:
            duration = self.t(locale, "duration-seconds", n=max(1, round(seconds)))
        elif seconds < 120:
            duration = self.t(locale, "duration-seconds", n=5 * -(-round(seconds) // 5))
        else:
            duration = self.t(locale, "duration-minutes", n=max(2, round(seconds / 60)))
        return self.t(locale, "eta-about", duration=duration)

    def error_text(self, locale: Locale, exc: DomainError) -> str:
        params = dict(exc.params)
        if isinstance(exc, TooManyJobsInFlight):
            params["wait"] = self.eta(locale, self.estimator.wait_s(0, self.clock()), unknown="eta-unknown-short")
        if "retry_after" in params:
            params["wait"] = self.duration(locale, float(params["retry_after"]))  # type: ignore[arg-type]
        if "value" in params:
            params["value"] = str(params["value"])
        key = f"error-{exc.code}"
        if not self.t.has(key, locale):
            key = "error-invalid_request"
        return self.t(locale, key, **params)

    def queued_text(self, locale: Locale, prompt: str, position: int) -> str:
        eta = self.eta(locale, self.estimator.wait_s(position - 1, self.clock()))
        return self.t(locale, "status-queued", position=position, eta=eta, prompt=short(prompt, 200))

    def progress_text(self, locale: Locale, prompt: str, stage: str, step: int = 0, total: int = 0) -> tuple[str, int]:
        prompt = short(prompt, 200)
        if stage == Stage.GENERATING and total:
            percent = max(0, min(100, int(100 * step / total)))
            return self.t(locale, "status-generating", percent=percent, bar=progress_bar(percent), prompt=prompt), percent
        key = "status-uploading" if stage == Stage.UPLOADING else "status-started"
        return self.t(locale, key, prompt=prompt), 100 if stage == Stage.UPLOADING else 0

    # --- making jobs ------------------------------------------------------------------------------
    def size_for(self, aspect: AspectRatio | None) -> tuple[int | None, int | None]:
        if aspect is None:
            return None, None
        area = self.submit.default_width * self.submit.default_height
        return size_for_aspect(aspect, self.submit.limits, area)

    def prefs_aspect(self, prefs: UserPrefs) -> AspectRatio | None:
        if not prefs.aspect:
            return None
        with contextlib.suppress(InvalidRequest):
            return parse_aspect(prefs.aspect, self.submit.limits)
        return None

    def build_job(
        self, *, user_id: int, chat_id: int, locale: Locale, prefs: UserPrefs, text: str,
        job_id: str | None = None,
    ) -> Job:
        """Parse the message's parameters and check everything; raises ``InvalidRequest``."""
        params = parse_prompt(text, self.submit.limits)
        width, height = self.size_for(params.aspect or self.prefs_aspect(prefs))
        quality = params.quality or prefs.quality or Quality.AUTO
        job = self.submit.prepare(
            user_id=user_id,
            chat_id=chat_id,
            prompt=params.prompt,
            negative_prompt=params.negative_prompt,
            width=width,
            height=height,
            seed=params.seed,
            quality=quality,
            locale=locale,
            job_id=job_id,
        )
        return job if prefs.translate else job.model_copy(update={"translate": False})

    def repeat_jobs(
        self, record: JobRecord, *, user_id: int, chat_id: int, locale: Locale, count: int, translate: bool = True
    ) -> list[Job]:
        """The same prompt, size and quality with ``count`` new seeds (translated as the user's
        settings say now)."""
        seeds: list[int] = []
        while len(seeds) < count:
            seed = self.seed_source()
            if seed != record.seed and seed not in seeds:
                seeds.append(seed)
        return [
            self.submit.prepare(
                user_id=user_id,
                chat_id=chat_id,
                prompt=record.prompt,
                negative_prompt=record.negative_prompt,
                width=record.width,
                height=record.height,
                seed=seed,
                quality=record.quality,
                locale=locale,
            ).model_copy(update={"translate": translate})
            for seed in seeds
        ]

    async def answer(self, query: Any, text: str | None = None, *, alert: bool = False) -> None:
        """Answer a callback query at once; a query too old to answer does not stop the work."""
        with contextlib.suppress(Exception):
            await query.answer(text, show_alert=alert)

    # --- the flow ----------------------------------------------------------------------------------
    async def reply(self, chat_id: int, text: str, *, reply_to: int | None = None, markup: Any = None) -> None:
        """Answer in the chat; a user who blocked the bot, or an answer Telegram refuses, is
        logged, never raised into the handler (which would leave the update half done)."""
        try:
            await self.sender.send_message(chat_id, text, reply_to=reply_to, reply_markup=markup)
        except RecipientGone:
            pass
        except TelegramBadRequest as exc:
            log.warning("a reply to chat %s was refused: %s", chat_id, exc.message)

    async def accept_text(
        self, *, user_id: int, chat_id: int, locale: Locale, prefs: UserPrefs, text: str,
        reply_to: int | None = None,
    ) -> list[Job]:
        """A prompt message: parse, check, admit, reply with the live status, queue."""
        job_id = job_id_for(chat_id, reply_to) if reply_to is not None else None
        try:
            job = self.build_job(
                user_id=user_id, chat_id=chat_id, locale=locale, prefs=prefs, text=text, job_id=job_id
            )
        except InvalidRequest as exc:
            if isinstance(exc, PromptRefused):
                self.safety.prompts_refused[str(exc.params.get("category", ""))] += 1
            await self.reply(chat_id, self.error_text(locale, exc), reply_to=reply_to)
            return []
        return await self.enqueue([job], locale=locale, reply_to=reply_to)

    async def enqueue(
        self, jobs: Sequence[Job], *, locale: Locale, reply_to: int | None = None, album: bool = False,
    ) -> list[Job]:
        """Admit ``jobs`` (all of one user) against the limits, then for each: the status reply,
        then the queue. ``album``: their pictures go out together, as one album. Returns the jobs
        accepted.

        Admission records each job (the outbox) before the user is told anything, so a job is
        never lost: if this process dies before the publish, or the queue does not answer, the
        outbox (``PublishOutbox``) publishes it later and the user is told it is waiting for the
        service, not that it was refused."""
        if not jobs:
            return []
        chat_id = jobs[0].chat_id
        lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        try:
            async with lock:  # one chat's requests are answered in the order they came
                return await self._enqueue(jobs, chat_id, locale=locale, reply_to=reply_to, album=album)
        finally:
            if not lock.locked() and not lock._waiters:  # noqa: SLF001 - forget idle chats
                self._chat_locks.pop(chat_id, None)

    async def _enqueue(
        self, jobs: Sequence[Job], chat_id: int, *, locale: Locale, reply_to: int | None, album: bool,
    ) -> list[Job]:
        now = self.clock()
        # distinct creation times keep the jobs of one request in order in the queue positions
        jobs = [job.model_copy(update={"created_at": now + i * 1e-6}) for i, job in enumerate(jobs)]
        pending = self.submit.in_flight
        pending.update(job.job_id for job in jobs)  # the outbox leaves them to us
        try:
            await self.store.admit(
                [JobRecord.from_job(j, request_message_id=reply_to) for j in jobs], self.config.limits, now
            )
        except LimitExceeded as exc:
            pending.difference_update(job.job_id for job in jobs)
            await self.reply(chat_id, self.error_text(locale, exc), reply_to=reply_to)
            return []
        except AlreadyAccepted:  # the same message again (a restart): it is being handled
            pending.difference_update(job.job_id for job in jobs)
            log.info("job %s was accepted before; the repeated update is ignored", jobs[0].job_id)
            return []
        if album and len(jobs) >= 2:
            self.albums.expect([job.job_id for job in jobs])
        positions = await self.queue_positions()
        accepted: list[Job] = []
        for i, job in enumerate(jobs):
            try:
                job = await self._open_status(job, locale, positions.get(job.job_id, i + 1), reply_to)
            except RecipientGone:
                pending.discard(job.job_id)
                await self.store.finish(job.job_id, Outcome(JobState.FAILED, self.clock(), error_code="recipient_gone"))
                continue
            try:
                await self.submit.publish(job)
            except QueueUnavailable:
                # Not refused: its fate is unknown, and the outbox publishes it again.
                if job.status_message_id is not None:
                    with contextlib.suppress(Exception):
                        await self.sender.edit_text(
                            chat_id, job.status_message_id,
                            self.t(locale, "status-waiting-service", prompt=short(job.prompt, 200)),
                            reply_markup=cancel_keyboard(self.t, locale, job.job_id),
                            priority=Priority.INTERACTIVE,
                        )
                accepted.append(job)
                continue
            await self.store.mark_published(job.job_id, self.clock())
            accepted.append(job)
        return accepted

    async def _open_status(self, job: Job, locale: Locale, position: int, reply_to: int | None) -> Job:
        """Send the job's live status message and remember it; the job, with its id. A status
        that cannot be sent does not stop the job (``RecipientGone`` does: nobody to draw for)."""
        text = self.queued_text(locale, job.prompt, position)
        try:
            status = await self.sender.send_message(
                job.chat_id, text, reply_to=reply_to, reply_markup=cancel_keyboard(self.t, locale, job.job_id)
            )
        except RecipientGone:
            raise
        except Exception as exc:  # no status message: the job still goes ahead
            log.warning("status reply for %s failed: %s", job.job_id, type(exc).__name__)
            return job
        self.board.opened(job.job_id, job.chat_id, status.message_id, text, locale=locale, prompt=job.prompt)
        await self.store.set_status_message(job.job_id, status.message_id)
        record = await self.store.get_job(job.job_id)
        if record is not None and not record.active:
            # Its result came first: a reply that waited long (flood control, a busy send budget)
            # and another bot instance's outbox published the job meanwhile. The status goes.
            self.board.close(job.job_id)
            await self.sender.delete(job.chat_id, status.message_id)
        return job.model_copy(update={"status_message_id": status.message_id})

    async def never_queued(self, record: JobRecord) -> None:
        """The outbox gave up on a job the queue never took: the user hears it honestly."""
        self.board.close(record.job_id)
        text = self.error_text(record.locale, QueueUnavailable(job_id=record.job_id))
        with contextlib.suppress(Exception):
            if record.status_message_id is not None and await self.sender.edit_text(
                record.chat_id, record.status_message_id, text, priority=Priority.RESULT,
            ):
                return
            await self.reply(record.chat_id, text)

    async def cancel(self, record: JobRecord, user_id: int, locale: Locale) -> bool:
        cancelled = await self.store.cancel(record.job_id, user_id, self.clock())
        if cancelled is None:
            return False
        self.board.close(record.job_id)
        # The worker holding the job answers with a 'cancelled' result instead of a picture; if it
        # already started, the picture it makes is discarded by the notifier (the store says
        # cancelled). A queue that cannot take the message now changes nothing for the user.
        try:
            await self.queue.publish_cancel(Cancel(job_id=record.job_id, user_id=user_id))
        except Exception as exc:
            log.warning("cancellation of %s not queued: %s", record.job_id, type(exc).__name__)
        if record.status_message_id is not None:
            with contextlib.suppress(Exception):
                await self.sender.edit_text(
                    record.chat_id, record.status_message_id,
                    self.t(locale, "status-cancelled", prompt=short(record.prompt, 200)),
                    priority=Priority.INTERACTIVE,
                )
        return True

    async def send_original(self, job_id: str, image_key: str, chat_id: int, locale: Locale, reply_to: int | None) -> None:
        """The PNG exactly as stored (a document: Telegram does not recompress documents)."""
        try:
            png = await self.storage.get(image_key)
        except KeyError:
            await self.reply(chat_id, self.t(locale, "error-original_gone"), reply_to=reply_to)
            return
        upload = BufferedInputFile(png, filename=f"prompt2pic-{job_id[:12]}.png")
        try:
            async with self.sender.chat_action(chat_id, "upload_document"):
                await self.sender.send_document(
                    chat_id, upload, reply_to=reply_to, priority=Priority.INTERACTIVE,
                    caption=self.t(locale, "original-caption"),
                )
        except RecipientGone:
            pass
        except (TelegramBadRequest, TelegramEntityTooLarge) as exc:
            log.warning("the original of %s was refused: %s", job_id, exc.message)
            await self.reply(chat_id, self.t(locale, "error-original_refused"), reply_to=reply_to)

    # --- the queue ----------------------------------------------------------------------------------
    async def queue_positions(self) -> dict[str, int]:
        """Each job not started yet and its place in line (1 = next), oldest first, from the user
        store: every bot keeps its jobs there (one SQLite file on a host, a server database
        across hosts), and workers' "started" events move jobs out of line. (The broker's lag is
        no measure of it: it counts running jobs, finished ones not committed yet, cancelled ones
        and the cancellations themselves.)"""
        now = self.clock()
        everyone = await self.store.active_jobs(None, since=now - self.config.limits.expiry_s)
        waiting = [r for r in everyone if r.state == JobState.QUEUED]
        return {r.job_id: i + 1 for i, r in enumerate(waiting)}

    async def refresh_waiting(self) -> int:
        """Edit the status of every job still in line with its place and wait now (the board
        edits only what changed, no faster than its interval); returns how many are in line."""
        waiting = self.board.waiting()
        if not waiting:
            return 0
        positions = await self.queue_positions()
        for job_id, record in list(waiting.items()):
            position = positions.get(job_id)
            if position is None or record is None:
                continue
            chat_id, message_id, locale, prompt = record
            self.board.show(
                job_id, chat_id, message_id, self.queued_text(locale, prompt, position),
                cancel_keyboard(self.t, locale, job_id), stage="queued",
            )
        return len(waiting)

    # --- reports ----------------------------------------------------------------------------------

    def today_start(self) -> float:
        now = datetime.fromtimestamp(self.clock(), UTC)
        return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def observe_result(self, result: Any) -> None:
        """A worker's result, for the wait estimates (its batch's size and time) and /stats."""
        if result.worker_id:
            self.workers_seen[result.worker_id] = max(self.workers_seen.get(result.worker_id, 0.0), result.finished_at)
        timings = result.timings
        if result.image_key and timings.generation_s > 0 and result.accepted_at:
            self.estimator.finished(
                result.worker_id, result.job_id,
                started_at=result.accepted_at + timings.queue_wait_s,
                finished_at=result.finished_at, generation_s=timings.generation_s,
            )
        else:
            self.estimator.ended(result.worker_id, result.job_id)

    def prefs_with(self, prefs: UserPrefs, field_name: str, value: str) -> UserPrefs:
        """``prefs`` with one setting changed from a settings button; unknown values change nothing."""
        if field_name == "ar":
            aspect = value.replace("x", ":")
            if aspect == "auto":
                return replace(prefs, aspect=None)
            with contextlib.suppress(InvalidRequest):
                return replace(prefs, aspect=str(parse_aspect(aspect, self.submit.limits)))
        elif field_name == "q" and value in set(Quality):
            return replace(prefs, quality=Quality(value))
        elif field_name == "lang":
            if value == "auto":
                return replace(prefs, locale=None)
            if value in set(Locale):
                return replace(prefs, locale=Locale(value))
        elif field_name == "as":
            if value in set(SendAs):
                return replace(prefs, send_as=SendAs(value))
        elif field_name == "tr" and value in ("on", "off"):
            return replace(prefs, translate=value == "on")
        return prefs
