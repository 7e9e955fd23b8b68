"""The ports: what the use cases need from the outside world, as ``typing.Protocol``s.

Each port has a real adapter (Kafka, S3, Würstchen, Telegram) and an embedded one (memory, local
folder, Pillow); one contract test suite in ``tests/contract`` runs against every adapter of a port.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import Generic, Protocol, TypeVar, runtime_checkable

from domain.errors import DomainError
from domain.models import Cancel, Event, GeneratedImage, GenerationRequest, Job, Locale, Progress, Result, StoredImage
from domain.safety import ImageVerdict
from domain.users import JobRecord, UserPrefs

T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Delivery(Protocol, Generic[T_co]):
    """A message handed to a consumer. The consumer must ``ack`` it once its work is durable
    (for a job: once its result is published), or ``release`` it to have it delivered again.
    A delivery neither acked nor released when its consumer dies is delivered again."""

    @property
    def message(self) -> T_co: ...

    @property
    def attempt(self) -> int:
        """How many times the message has been handed out, this time included (1: the first),
        by whichever consumer of the group; a message whose consumers keep dying counts up."""
        ...

    async def ack(self) -> None: ...

    async def release(self) -> None: ...


class JobQueue(Protocol):
    """Requests flow from bots to workers; events (progress and results) flow back.

    Delivery contract, the same for every adapter:
    - a published job is delivered to one worker of the group; it stays owed until acked;
    - an unacked job is delivered again after ``release`` or when its consumer goes away;
    - a message that cannot be decoded is set aside (dead letters) and never stops a consumer;
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

    async def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str]
    ) -> StoredImage:
        """Store ``data`` under ``key``, replacing what was there; return the key and a link."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def link(self, key: str) -> str: ...


class Notifier(Protocol):
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
    ``check`` must not block the event loop: the detector runs on a thread of its own."""

    name: str

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

    async def open_status(self, job: Job, position: int, reply_to: int | None) -> int | None:
        """Send the job's live status (its ``position`` in line, 1 = next); its message id, or
        None when it could not be sent (the job goes ahead without one). ``RecipientGone``:
        nobody to draw for."""
        ...

    async def withdraw_status(self, job: Job, message_id: int) -> None:
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
    result that the use case decided goes out."""

    async def progress(self, event: Progress) -> None: ...

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
        """Send the result (the picture or the failure) as ``Notifier.deliver`` says; await
        ``sent`` the moment the chat has taken it. ``RecipientGone``: the user blocked the bot."""
        ...

    async def settle(self, result: Result) -> None: ...
