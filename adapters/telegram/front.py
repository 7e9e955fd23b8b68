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
from aiogram.types import BufferedInputFile, CallbackQuery

from adapters.telegram.albums import Albums
from adapters.telegram.i18n import UiTexts
from adapters.telegram.keyboards import cancel_keyboard, short
from adapters.telegram.paste import SplitPaste
from adapters.telegram.sender import Priority, Sender
from adapters.telegram.status import QUEUED, StatusBoard, progress_bar
from domain.errors import DomainError, InvalidRequest, PromptRefused, QueueUnavailable, RecipientGone
from domain.models import GeneratorKind, Job, Locale, Quality, Stage
from domain.params import AspectRatio, parse_aspect, parse_prompt, size_for_aspect
from domain.ports import JobQueue, Storage
from domain.safety import SafetyTally
from domain.use_cases import SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob, repeat_jobs
from domain.users import (
    JobRecord,
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
    limits: UserLimits = field(default_factory=UserLimits)
    admins: frozenset[int] = frozenset()
    allowed: frozenset[int] = frozenset()  # empty: everyone
    variations: int = 3
    history_size: int = 10
    admin_chat_id: int = 0  # where users' reports go (0: every admin's own chat)
    split_join_s: float = 1.5  # parts of a client-split paste arriving this close are joined
    album_wait_s: float = 30.0  # how long a finished variation waits for the others of its album
    # What links the bot can give (adapters/telegram/links.py): set by the runtime from storage.
    links: str = "none"  # button | text | none
    translation: bool = True  # PROMPT_TRANSLATION is not off


@dataclass
class Front:
    submit: SubmitPrompt
    queue: JobQueue
    storage: Storage
    store: UserStore
    sender: Sender
    t: UiTexts
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
    # What makes the pictures: this process's generator (--role all), else what the last result
    # said (a bot-only process); None until known. /start, /help and /settings say it.
    generator_kind: GeneratorKind | None = None
    # The use cases behind the handlers (the runtime wires them, with a TelegramAnnouncer).
    admit: AdmitJobs | None = None
    cancel_job: CancelJob | None = None

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

    @property
    def receives_reports(self) -> bool:
        """Whether anyone gets users' reports (an admin chat, or admins): else no Report button."""
        return bool(self.config.admin_chat_id or self.config.admins)

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
            text = self.t(locale, "status-generating", percent=percent, bar=progress_bar(percent), prompt=prompt)
            return text, percent
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
        self,
        *,
        user_id: int,
        chat_id: int,
        locale: Locale,
        prefs: UserPrefs,
        text: str,
        job_id: str | None = None,
    ) -> Job:
        """Parse the message's parameters and check everything; raises ``InvalidRequest``."""
        params = parse_prompt(text, self.submit.limits)
        aspect = params.aspect or self.prefs_aspect(prefs)
        width, height = self.size_for(aspect)
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
            aspect=aspect.ratio if aspect else 0.0,
        )
        return job if prefs.translate else job.model_copy(update={"translate": False})

    def repeat_jobs(
        self, record: JobRecord, *, user_id: int, chat_id: int, locale: Locale, count: int, translate: bool = True
    ) -> list[Job]:
        """The same prompt, size and quality with ``count`` new seeds (``repeat_jobs``)."""
        return repeat_jobs(
            self.submit,
            record,
            user_id=user_id,
            chat_id=chat_id,
            locale=locale,
            count=count,
            translate=translate,
            seed_source=self.seed_source,
        )

    async def job_for_button(
        self, query: CallbackQuery, job_id: str, locale: Locale, *, owner_only: bool = False
    ) -> JobRecord | None:
        """The job a button names, when the one who pressed it may act on it: its owner, or
        (not with ``owner_only``) a member of the group it was made in (``JobRecord.reachable_by``).
        Otherwise the query is answered here, politely and once, and None comes back: the
        handler then touches nothing. Callback data is whatever a client sends, so the job id
        in it proves nothing; the record decides."""
        record = await self.store.get_job(job_id)
        user_id = query.from_user.id
        chat_id = query.message.chat.id if query.message else None
        if record is None:
            await self.answer(query, self.t(locale, "answer-job-forgotten"))
            return None
        if not (record.owned_by(user_id) if owner_only else record.reachable_by(user_id, chat_id)):
            log.info("user %s pressed a button of job %s, which is not theirs", user_id, job_id)
            await self.answer(query, self.t(locale, "answer-not-yours"))
            return None
        return record

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
        self,
        *,
        user_id: int,
        chat_id: int,
        locale: Locale,
        prefs: UserPrefs,
        text: str,
        reply_to: int | None = None,
    ) -> list[Job]:
        """A prompt message: parse, check, admit, reply with the live status, queue."""
        job_id = self.submit.job_id_for(chat_id, reply_to) if reply_to is not None else None
        try:
            job = self.build_job(user_id=user_id, chat_id=chat_id, locale=locale, prefs=prefs, text=text, job_id=job_id)
        except InvalidRequest as exc:
            if isinstance(exc, PromptRefused):
                self.safety.prompts_refused[str(exc.params.get("category", ""))] += 1
            await self.reply(chat_id, self.error_text(locale, exc), reply_to=reply_to)
            return []
        return await self.enqueue([job], locale=locale, reply_to=reply_to)

    async def enqueue(
        self,
        jobs: Sequence[Job],
        *,
        locale: Locale,
        reply_to: int | None = None,
        album: bool = False,
    ) -> list[Job]:
        """Admit ``jobs`` (all of one user, asked in ``locale``): ``AdmitJobs``, which answers
        through the ``TelegramAnnouncer``. ``album``: their pictures go out together. Returns
        the jobs accepted."""
        assert self.admit is not None, "wired by the runtime"
        return await self.admit(jobs, reply_to=reply_to, album=album)

    async def never_queued(self, record: JobRecord) -> None:
        """The outbox gave up on a job the queue never took: the user hears it honestly."""
        self.board.close(record.job_id)
        text = self.error_text(record.locale, QueueUnavailable(job_id=record.job_id))
        with contextlib.suppress(Exception):
            if record.status_message_id is not None and await self.sender.edit_text(
                record.chat_id,
                record.status_message_id,
                text,
                priority=Priority.RESULT,
            ):
                return
            await self.reply(record.chat_id, text)

    async def cancel(self, record: JobRecord, user_id: int, locale: Locale) -> bool:
        """Withdraw a job of the user's (``CancelJob``); False: not theirs, or not active."""
        assert self.cancel_job is not None, "wired by the runtime"
        return await self.cancel_job(record, user_id, locale)

    async def send_original(
        self, job_id: str, image_key: str, chat_id: int, locale: Locale, reply_to: int | None
    ) -> None:
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
                    chat_id,
                    upload,
                    reply_to=reply_to,
                    priority=Priority.INTERACTIVE,
                    caption=self.t(locale, "original-caption"),
                )
        except RecipientGone:
            pass
        except (TelegramBadRequest, TelegramEntityTooLarge) as exc:
            log.warning("the original of %s was refused: %s", job_id, exc.message)
            await self.reply(chat_id, self.t(locale, "error-original_refused"), reply_to=reply_to)

    # --- the queue ----------------------------------------------------------------------------------
    async def queue_positions(self) -> dict[str, int]:
        """Each job not started yet and its place in line (1 = next): ``AdmitJobs.queue_positions``."""
        assert self.admit is not None, "wired by the runtime"
        return await self.admit.queue_positions()

    async def refresh_waiting(self) -> int:
        """Edit the status of every job still in line with its place and wait now (the board
        edits only what changed, no faster than its interval); returns how many are in line.

        Only for the chats whose events this instance receives: with several bot instances the
        one that gets a chat's progress and results keeps its status (another instance may have
        sent the status reply), so no two instances edit one status and a finished or started
        job is never shown as waiting again."""
        assert self.admit is not None, "the admission use case is not wired"
        in_line = await self.admit.in_line()
        still = {record.job_id for record, _ in in_line}
        for job_id in self.board.waiting():
            if job_id not in still:  # started, finished or cancelled: its events' owner says so
                self.board.forget(job_id)
        for record, position in in_line:
            if record.status_message_id is None or not self.queue.delivers_events_of(record.chat_id):
                continue
            self.board.show(
                record.job_id,
                record.chat_id,
                record.status_message_id,
                self.queued_text(record.locale, record.prompt, position),
                cancel_keyboard(self.t, record.locale, record.job_id),
                stage=QUEUED,
            )
        return len(in_line)

    # --- reports ----------------------------------------------------------------------------------

    def today_start(self) -> float:
        now = datetime.fromtimestamp(self.clock(), UTC)
        return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def observe_result(self, result: Any) -> None:
        """A worker's result, for the wait estimates (its batch's size and time) and /stats."""
        if result.worker_id:
            self.workers_seen[result.worker_id] = max(self.workers_seen.get(result.worker_id, 0.0), result.finished_at)
        if result.generator_kind is not None:
            self.generator_kind = result.generator_kind
        timings = result.timings
        if result.image_key and timings.generation_s > 0 and result.accepted_at:
            self.estimator.finished(
                result.worker_id,
                result.job_id,
                started_at=result.accepted_at + timings.queue_wait_s,
                finished_at=result.finished_at,
                generation_s=timings.generation_s,
            )
        else:
            self.estimator.ended(result.worker_id, result.job_id)

    def translates(self) -> bool:
        """Whether prompts are translated for the model now: not with PROMPT_TRANSLATION=off, and
        not for the placeholder, which reads no prompt."""
        return self.config.translation and self.generator_kind != GeneratorKind.PLACEHOLDER

    def generator_text(self, locale: Locale) -> str:
        """One line on what makes the pictures, for /start and /help."""
        return self.t(locale, f"generator-{self.generator_kind.value if self.generator_kind else 'unknown'}")

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
