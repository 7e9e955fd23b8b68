"""The ports: what the use cases need from the outside world, as ``typing.Protocol``s.

Each port has a real adapter (Kafka, S3, Würstchen, Telegram, SQLite, OpenTelemetry) and an embedded
or no-op one; the suites in ``tests/contract`` run against every adapter of the queue, storage,
generator and user store ports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from domain.errors import DomainError
from domain.models import (
    Cancel,
    Event,
    GeneratedImage,
    GenerationRequest,
    Job,
    Lane,
    Locale,
    Progress,
    Quality,
    Result,
    StoredImage,
)
from domain.quality import QualityProfile
from domain.safety import ImageVerdict

if TYPE_CHECKING:  # domain.users re-exports UserStore from here: no import of it at run time
    from domain.credits import LedgerEntry, Refunded, StarPayment
    from domain.lanes import Usage
    from domain.users import JobRecord, Outcome, StoreStats, UserLimits, UserPrefs

T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Delivery(Protocol, Generic[T_co]):
    """A message handed to a consumer. The consumer must ``ack`` it once its work is durable
    (for a job: once its result is published), or ``release`` it to have it delivered again.
    A delivery neither acked nor released when its consumer dies is delivered again.

    ``hand_back`` is the release of a planned stop (a shutdown, a rolling upgrade, a scale-down):
    the message is delivered again and this delivery does not count toward ``attempt``, so a
    job that restarts cut short fails with TOO_MANY_ATTEMPTS only when its workers died with it,
    never because they were stopped on purpose."""

    @property
    def message(self) -> T_co: ...

    @property
    def attempt(self) -> int:
        """How many times the message has been handed out, this time included (1: the first),
        by whichever consumer of the group; a message whose consumers keep dying counts up."""
        ...

    async def ack(self) -> None: ...

    async def release(self) -> None: ...

    async def hand_back(self) -> None:
        """Give the message back unfinished, uncounted: this consumer stops as planned."""
        ...


class JobQueue(Protocol):
    """Requests flow from bots to workers; events (progress and results) flow back.

    Delivery contract, the same for every adapter:
    - a published job is delivered to one worker of the group; it stays owed until acked;
    - an unacked job is delivered again after ``release`` or when its consumer goes away;
    - a message that cannot be decoded is set aside (dead letters) and never stops a consumer;
    - jobs are handed out priority lane first (``Job.lane``), and the relaxed lane gets at least
      one in ``relaxed_every`` of the jobs handed out while it has work (``domain.lanes.LaneTurns``);
      a cancellation travels in its job's lane, behind it;
    - any bot instance may receive any event; events are at least once, so the bot deduplicates
      results by job id.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def is_ready(self) -> bool: ...

    async def publish_job(self, job: Job) -> None: ...

    async def publish_cancel(self, cancel: Cancel) -> None:
        """Withdraw a queued job; it travels behind the job, to the worker that holds it."""
        ...

    async def receive_jobs(self, max_jobs: int, timeout: float) -> list[Delivery[Job | Cancel]]: ...

    async def publish_event(self, event: Event) -> None: ...

    async def receive_events(self, max_events: int, timeout: float) -> list[Delivery[Event]]: ...

    def delivers_events_of(self, chat_id: int) -> bool:
        """Whether this process receives the events (progress, results) of ``chat_id`` now.
        Several bot instances split the chats between them, and a chat's live status is kept
        by the one that gets its events; with one instance, always true."""
        ...

    async def backlog(self) -> int:
        """Jobs published and not yet acked by the worker group (consumer lag), best effort."""
        ...

    async def backlogs(self) -> dict[Lane, int]:
        """``backlog`` lane by lane (the quality policy judges a priority job by the priority
        lane's backlog alone: it waits behind that one), best effort."""
        ...


ProgressCallback = Callable[[int, int], Awaitable[None] | None]
"""Called on the event loop with (step, total_steps) while a batch is generated."""


class Generator(Protocol):
    """Makes images. ``generate`` must not block the event loop: heavy work runs off it."""

    name: str
    max_batch: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GeneratedImage]: ...


class PromptTranslator(Protocol):
    """Machine translation into English, for the English-only text encoders.

    ``translate`` gets texts in Cyrillic script (Russian, and its neighbours the Russian model
    copes with) that the domain has already cut out of the prompts (see ``domain.translation``),
    and returns one English text per input, in order, from one batched model call. The model runs
    off the event loop. ``translates`` is False for the pass-through adapter
    (``PROMPT_TRANSLATION=off``): the domain then does not call it at all."""

    name: str
    translates: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def translate(self, texts: Sequence[str]) -> list[str]: ...


class PromptReader(Protocol):
    """What a generator's text encoder reads of a prompt (CLIP reads 77 tokens, the rest is cut).
    Implemented by the generator that owns the tokenizer."""

    async def unread(self, prompts: Sequence[str]) -> list[tuple[str, int]]:
        """For each prompt: the words past the encoder's token limit ("" when it reads them all)
        and that limit."""
        ...


class Storage(Protocol):
    """Keeps images and hands out links users can open."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> StoredImage:
        """Store ``data`` under ``key``, replacing what was there; return the key and a link."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def link(self, key: str) -> str: ...


class OutcomeRecorder(Protocol):
    """The chat front as the deliver-results use case sees it."""

    async def progress(self, event: object) -> None: ...

    async def deliver(self, result: Result, sent: Callable[[], Awaitable[None]]) -> None:
        """Send the result to the user, awaiting ``sent`` the moment the chat has taken the
        picture or the failure (before anything else: the delivery is confirmed in it, so that a
        process killed right after does not send it again). Raises ``RecipientGone`` when the
        user cannot be reached (blocked the bot); ``StorageError`` (or any non-domain error)
        means 'try again later'; another ``DomainError`` means it can never be sent."""
        ...

    async def settle(self, result: Result) -> None:
        """Finish the job's live status once its result is delivered (for good): best effort and
        idempotent, also for a result that an earlier, killed process delivered."""
        ...


class Claim(StrEnum):
    """The answer of ``DeliveryLog.claim``."""

    TAKEN = "taken"  # this process delivers the result now
    DELIVERED = "delivered"  # delivered (or given up) for good before: skip it
    HELD = "held"  # a delivery in progress elsewhere holds it: try again later


class DeliveryLog(Protocol):
    """Remembers which results were delivered, so a redelivered result is not sent twice, and
    none is lost when the process delivering it dies.

    A claim is a lease until ``confirm``: an unconfirmed claim is taken over once its lease ran
    out without ``renew``, or at once by the same bot instance restarted (same owner name, a new
    incarnation)."""

    async def claim(self, job_id: str) -> Claim: ...

    async def renew(self, job_id: str) -> None:
        """Extend this process's claim of ``job_id`` (a delivery that takes long, e.g. waiting
        out Telegram's flood control)."""
        ...

    async def confirm(self, job_id: str) -> None:
        """The result of ``job_id`` reached the user (or never can): the claim is final."""
        ...

    async def forget(self, job_id: str) -> None:
        """Give the claim back (the delivery failed and will be tried again)."""
        ...


class ImageCheck(Protocol):
    """Looks at finished pictures before they are stored (NudeNet, or the no-op check).
    ``check`` must not block the event loop: the detector runs on a thread of its own.
    ``inspects``: a detector really looks (False: the stand-in that passes every picture, which
    is then not called, and no picture is counted as checked)."""

    name: str
    inspects: bool

    async def start(self) -> None:
        """Load the detector (off the event loop)."""
        ...

    async def stop(self) -> None: ...

    async def check(self, pngs: Sequence[bytes]) -> list[ImageVerdict]:
        """One verdict per picture, in order."""
        ...


class Announcer(Protocol):
    """The chat side of admitting and cancelling jobs (``AdmitJobs``, ``CancelJob``): what the
    user is told, and each job's live status message. The texts and keyboards are the chat
    adapter's; the use cases only say what happened."""

    def album(self, job_ids: Sequence[str]) -> None:
        """The pictures of these jobs go out together, as one album."""
        ...

    async def refused(self, job: Job, error: DomainError, reply_to: int | None) -> None:
        """The request of ``job`` (and the others asked with it) was refused: say why."""
        ...

    async def open_status(self, job: Job, position: int, reply_to: int | None) -> int | str | None:
        """Send the job's live status (its ``position`` in line, 1 = next); its message id in the
        job's chat, or (a ``str``) the id of an inline message: a status posted as the answer to
        a guest query, outside the bot's own chats, which the picture replaces in place. None
        when it could not be sent (the job goes ahead without one). ``RecipientGone``: nobody to
        draw for."""
        ...

    async def withdraw_status(self, job: Job, message_id: int | str) -> None:
        """The job ended before its status was recorded: its status goes."""
        ...

    async def waiting_for_service(self, job: Job) -> None:
        """The queue did not take ``job`` now (the outbox publishes it later): its status says it
        waits for the service. Best effort."""
        ...

    def close_status(self, job_id: str) -> None:
        """Show no more live progress for the job."""
        ...

    async def cancelled(self, record: JobRecord, locale: Locale) -> None:
        """The job's status says it was cancelled. Best effort."""
        ...


class ResultChannel(Protocol):
    """The chat side of delivering results (``RecordOutcomes``): the live status, and sending a
    result that the use case decided goes out. The events handed over were checked against
    their job's record and rebuilt from it (``VetEvents``): a result's chat, status message,
    prompt, language and link (``image_url``, signed by the bot's storage) are the record's."""

    def observed(self, event: Progress) -> None:
        """A worker's report on a job (any job the bot knows, active or not): the wait estimates
        and the list of workers seen learn from it."""
        ...

    async def progress(self, event: Progress, record: JobRecord) -> None:
        """Show the report in the live status of ``record``'s job (an active one): its chat,
        status message, prompt and language are the record's."""
        ...

    def arrived(self, result: Result) -> None:
        """A result came (before anything is decided): its live status stops; the wait
        estimates learn from it."""
        ...

    def counted(self, result: Result) -> None:
        """A result that is not dropped as cancelled (for the service's statistics)."""
        ...

    def dropped(self, job_id: str) -> None:
        """The result of ``job_id`` is not sent (an album waiting for it goes on without it)."""
        ...

    def is_reachable(self, chat_id: int) -> bool:
        """False: the chat refused a message before (blocked the bot)."""
        ...

    async def send(
        self, result: Result, record: JobRecord | None, prefs: UserPrefs, sent: Callable[[], Awaitable[None]]
    ) -> None:
        """Send the result (the picture or the failure) as ``OutcomeRecorder.deliver`` says; await
        ``sent`` the moment the chat has taken it. ``RecipientGone``: the user blocked the bot."""
        ...

    async def settle(self, result: Result) -> None: ...


class QualityPolicy(Protocol):
    def choose(
        self, requested: Quality, backlog: int, lane: Lane = Lane.PRIORITY, *, paid: bool = False
    ) -> tuple[QualityProfile, str]:
        """Pick the profile for a job and say why (shown in the caption). ``paid``: a credit was
        spent on it, so the quality it asks for is kept whatever the load (within the ladder)."""
        ...

    def observe(self, profile: str, batch_size: int, seconds: float) -> None:
        """Learn from a finished batch how fast a profile runs."""
        ...

    def calibrate(self, seconds_per_image: Mapping[str, float]) -> None:
        """This worker's own seconds per image, timed at its start: they replace the starting
        estimates of the profiles they name."""
        ...

    def estimate(self, profile: str) -> float | None:
        """This worker's seconds per image for ``profile`` now, timed at its start or measured
        since (None: none yet; a configured figure of another device is never given out)."""
        ...


class UserStore(Protocol):
    """Keeps users' preferences and jobs. Every method is safe to call concurrently."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def get_prefs(self, user_id: int) -> UserPrefs:
        """The user's preferences (the defaults for a user never seen), with ``blocked``."""
        ...

    async def save_prefs(self, prefs: UserPrefs) -> None: ...

    async def admit(self, records: Sequence[JobRecord], limits: UserLimits, now: float) -> None:
        """Atomically check ``check_admission`` for the records' user and add the records;
        raises ``LimitExceeded`` and adds nothing when they do not fit, ``AlreadyAccepted``
        when every record's job id is known already (a repeated update)."""
        ...

    async def usage(self, user_id: int, *, recent_since: float, day_since: float) -> Usage:
        """The user's pictures queued, running or made (failed and cancelled ones do not
        count): ``recent`` created at or after ``recent_since`` in any lane, ``priority_today``
        created at or after ``day_since`` in the priority lane (``domain.lanes``)."""
        ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def set_status_message(self, job_id: str, message_id: int) -> None: ...

    async def set_inline_message(self, job_id: str, inline_message_id: str) -> None:
        """The job's status is an inline message (a guest query's answer), edited by this id."""
        ...

    async def set_file_id(self, job_id: str, file_id: str) -> None:
        """Telegram's id of the job's picture, once sent (for sharing it in inline mode)."""
        ...

    async def mark_published(self, job_id: str, at: float) -> None:
        """The job is on the queue (the outbox need not publish it again)."""
        ...

    async def unpublished(self, created_before: float) -> list[JobRecord]:
        """Queued jobs never confirmed on the queue, created before ``created_before``, oldest
        first: the outbox publishes them (again)."""
        ...

    async def mark_started(self, job_id: str, at: float, worker_id: str) -> JobRecord | None:
        """Queued -> running (no change in any other state); the record, or None if unknown."""
        ...

    async def finish(self, job_id: str, outcome: Outcome) -> JobRecord | None:
        """Record the job's result (see ``apply_outcome``); the record, or None if unknown."""
        ...

    async def cancel(self, job_id: str, user_id: int, at: float) -> JobRecord | None:
        """Cancel one of ``user_id``'s active jobs; the cancelled record, or None when there is
        no such active job."""
        ...

    async def active_jobs(self, user_id: int | None = None, since: float = 0.0) -> list[JobRecord]:
        """Queued or running jobs created at or after ``since``, oldest first (all users: None)."""
        ...

    async def history(self, user_id: int, limit: int) -> list[JobRecord]:
        """The user's finished pictures (state done), newest first."""
        ...

    async def mark_blocked(self, user_id: int, at: float) -> None: ...

    async def unblock(self, user_id: int) -> None: ...

    async def is_blocked(self, user_id: int) -> bool: ...

    async def ban(self, user_id: int, at: float) -> bool:
        """An admin banned the user: the bot ignores them from now on. True when they were not
        banned before (a user never seen is banned too: a ban can come before the first message)."""
        ...

    async def unban(self, user_id: int) -> bool:
        """True when the user was banned."""
        ...

    async def ban_noticed(self, user_id: int) -> bool:
        """Note that a banned user was told they are banned: True only the first time after the
        ban (atomic: two messages at once tell them once); False when not banned."""
        ...

    async def stats(self, since: float) -> StoreStats:
        """Counts of jobs created since ``since``; workers seen finishing jobs since then."""
        ...


class CreditStore(Protocol):
    """Keeps credits bought with Stars: each user's balance, the payments (one per Telegram
    charge id) and the ledger. Each method is one transaction with its ledger row; the user
    stores (memory, SQLite, PostgreSQL) implement it on the same database as the jobs."""

    async def credit_purchase(self, payment: StarPayment) -> bool:
        """Record the payment and grant its credits, with a ``purchase`` ledger row; True the
        first time, False for a charge id known already (nothing changes: exactly once)."""
        ...

    async def credits(self, user_id: int) -> int:
        """The credits the user has left (0 for a user never seen)."""
        ...

    async def spend_credit(self, user_id: int, job_id: str, at: float) -> bool:
        """Spend one of the user's credits on the recorded job ``job_id``: the job's record is
        marked ``paid_credit``, with a ``spend`` ledger row. True when the job is paid (now,
        or before: the same job is never charged twice); False when the user has no credit
        left, or the job is unknown or has ended (cancelled meanwhile: its give-back ran)."""
        ...

    async def give_back_credit(self, job_id: str, at: float) -> bool:
        """The paid job ended without a picture: its credit goes back to its user, with a
        ``give_back`` ledger row; True the first time, False when the job was not paid or its
        credit was given back already."""
        ...

    async def get_payment(self, charge_id: str) -> StarPayment | None: ...

    async def refund_payment(self, charge_id: str, at: float) -> Refunded | None:
        """The payment's Stars were refunded: take back the credits not yet spent (at most the
        payment's), with a ``refund`` ledger row, once; None for an unknown charge id. Where
        fewer are left than the payment's, the credits of that many of the user's paid jobs
        still in flight become final (a ``kept`` row each): cancelling them after the refund
        must not give back credits whose Stars went back."""
        ...

    async def ledger(self, user_id: int) -> list[LedgerEntry]:
        """The user's ledger, oldest first."""
        ...


class StarPayments(Protocol):
    """The payment platform's side (Telegram Stars): refunds and the record of payments received."""

    async def refund(self, user_id: int, charge_id: str) -> None:
        """Give the payment's Stars back to the user; ``RefundRefused`` when the platform refuses
        (``reason`` ``already_refunded``: it was refunded before)."""
        ...

    async def received(self, since: float) -> list[StarPayment]:
        """The payments received since ``since`` as the platform records them (for crediting a
        payment whose message was lost: a bot killed between the payment and the credit)."""
        ...


Carrier = Mapping[str, str]
"""Trace context as text headers (W3C traceparent), carried with a message on the queue."""


class Metrics(Protocol):
    def profile_selected(self, profile: str, reason: str) -> None: ...

    def batch_generated(self, profile: str, batch_size: int, seconds: float) -> None: ...

    def job_finished(self, result: Result, batch_size: int) -> None: ...

    def lane_wait(self, lane: str, seconds: float) -> None:
        """A job of ``lane`` started after waiting ``seconds`` since it was accepted."""
        ...

    def job_lane(self, lane: str, reason: str) -> None:
        """A job was admitted to ``lane`` for ``reason`` (``domain.lanes.LaneReason``)."""
        ...

    def storage_error(self) -> None: ...

    def jobs_in_flight(self, delta: int) -> None: ...

    def consumer_lag(self, jobs: int) -> None:
        """The group-wide backlog: every process that measures it reports the same figure, so
        dashboards take ``max()`` of it, never ``sum()``."""
        ...

    def result_delivered(self, result: Result, end_to_end_s: float) -> None: ...

    def delivery_error(self, kind: str) -> None: ...

    def prompt_understood(self, language: str, outcome: str) -> None:
        """One prompt before generation: its detected language and what became of it
        (translated, none, failed, off)."""
        ...

    def translation_batch(self, texts: int, seconds: float) -> None: ...

    def translation_failed(self, kind: str) -> None: ...

    def prompt_refused(self, category: str, where: str) -> None:
        """The prompt filter refused a prompt (``where``: bot or worker)."""
        ...

    def image_checked(self, seconds: float, flagged: Sequence[str], action: str) -> None:
        """One picture through the image check: how long it took, the categories it flagged."""
        ...

    def forged_event(self, kind: str, reason: str) -> None:
        """An event on the results stream that does not match its job's record was dropped
        (``kind``: progress or result; ``reason``: a ``domain.use_cases.vet.Forgery``)."""
        ...

    def job_accepted(self) -> None:
        """The bot accepted one prompt (it is recorded and will be answered): the denominator of
        the service-level objectives (docs/operations.md)."""
        ...

    def first_reply(self, seconds: float) -> None:
        """The bot's first reply (the live status) went out this long after it began admitting the
        prompt (the limits, the place in line, the status message)."""
        ...

    def dead_lettered(self, topic: str) -> None:
        """A message of ``topic`` that could not be decoded was set aside on the dead-letter topic."""
        ...

    def generator_info(self, info: Mapping[str, str]) -> None:
        """What the worker's generator runs on, set once at start: device, dtype and why that
        dtype (``dtype_reason``), backend, machine and model."""
        ...

    def worker_speed(self, seconds_per_image: Mapping[str, float], sources: Mapping[str, str]) -> None:
        """This worker's own seconds per image of each profile (timed at start or read from its
        cache: ``sources``), as the policy starts from them."""
        ...

    def telegram_api_error(self, method: str, code: str) -> None:
        """A Bot API call refused (``code``: 400, 401, 403, 409, 429, 5xx, network...), any method."""
        ...

    def telegram_up(self, mode: str, up: bool) -> None:
        """Whether updates reach the bot (``mode``: polling or webhook)."""
        ...

    def model_loading(self, loading: bool, downloaded_bytes: int = 0) -> None:
        """The worker's model loads (or downloads: the bytes fetched so far) and it takes no jobs yet."""
        ...

    def stars_received(self, stars: int) -> None:
        """A Stars payment was credited (once per charge id)."""
        ...

    def credits_moved(self, kind: str, credits: int) -> None:
        """Credits granted, spent, given back or refunded (``kind``: a ``LedgerKind`` value;
        ``credits``: how many, never negative)."""
        ...


class Tracer(Protocol):
    def span(
        self,
        name: str,
        *,
        carrier: Carrier | None = None,
        links: Sequence[Carrier] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        """A span, child of the trace in ``carrier`` when given, current while the block runs
        (so messages published inside it carry its context)."""
        ...


class SpeedProbe(Protocol):
    """A generator that times itself (the worker's calibration at start)."""

    def speed_identity(self) -> dict[str, str]:
        """What its speed depends on: ``machine`` (CPU model and threads, or GPU name), ``model``,
        ``dtype``, ``backend``; with ``device`` and ``dtype_reason`` for the metrics."""
        ...

    async def time_one(self, request: GenerationRequest) -> tuple[float, list[float]]:
        """Make ``request``'s image as a job's (PNG included): the seconds it took, and when each
        step ended (seconds since the start: the prior's steps, then the decoder's)."""
        ...


class SpeedCache(Protocol):
    """Figures of earlier calibrations, by the worker's identity (a small file)."""

    async def load(self, key: str) -> dict[str, float]:
        """Seconds per image by request signature (``domain.speed.signature``); {} if none."""
        ...

    async def save(self, key: str, figures: Mapping[str, float]) -> None: ...
