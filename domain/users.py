"""Users of the chat front: their preferences, their jobs (live ones and history), and the limits
that keep one user from flooding the service.

Pure rules and values here; ``domain.ports.UserStore`` is the port that keeps them (in memory for tests, SQLite
on a volume by default). The store applies ``check_admission`` inside one transaction with the
insert of the new jobs, so two messages of one user handled at the same time (or by two bot
instances sharing the database) cannot both slip under the cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum, StrEnum
from typing import Any, Protocol

from domain.errors import RateLimited, TooManyJobsInFlight
from domain.models import ErrorCode, Job, JobStatus, Lane, Locale, Quality, Result


class SendAs(StrEnum):
    PHOTO = "photo"  # Telegram recompresses photos; the original PNG is one button away
    DOCUMENT = "document"  # the PNG itself, byte for byte


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class UserPrefs:
    user_id: int
    locale: Locale | None = None  # None: follow the Telegram client's language
    aspect: str | None = None  # "16:9"; None: the service's default size
    quality: Quality = Quality.AUTO
    send_as: SendAs = SendAs.PHOTO
    translate: bool = True  # prompts translated into English for the model (off: as written)
    # State, not a preference: the user blocked the bot (read with the prefs in one go; set by
    # ``mark_blocked``/``unblock``, left alone by ``save_prefs``).
    blocked: bool = False
    # State too: an admin banned the user (``ban``/``unban``; ``save_prefs`` leaves it alone).
    banned: bool = False

    @classmethod
    def from_row(cls, user_id: int, row: Row) -> UserPrefs:
        """The prefs from a ``users`` row (``PREFS_COLUMNS``); unknown values fall back to the
        defaults (a value an older or newer release wrote)."""
        return cls(
            user_id=user_id,
            locale=Locale(row["locale"]) if row["locale"] in set(Locale) else None,
            aspect=row["aspect"],
            quality=Quality(row["quality"]) if row["quality"] in set(Quality) else Quality.AUTO,
            send_as=SendAs(row["send_as"]) if row["send_as"] in set(SendAs) else SendAs.PHOTO,
            translate=bool(row["translate"]),
            blocked=row["blocked_at"] is not None,
            banned=row["banned_at"] is not None,
        )


# The columns of ``users`` that ``UserPrefs.from_row`` reads.
PREFS_COLUMNS = "locale, aspect, quality, send_as, blocked_at, translate, banned_at"


class Row(Protocol):
    """A database row read by column name (sqlite3.Row, asyncpg.Record, a dict)."""

    def __getitem__(self, name: str, /) -> Any: ...


@dataclass(frozen=True)
class JobRecord:
    """What the front remembers of a job: enough to show it live, repeat it, and list it later."""

    job_id: str
    user_id: int
    chat_id: int
    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int
    quality: Quality
    locale: Locale
    created_at: float
    state: JobState = JobState.QUEUED
    status_message_id: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    image_key: str | None = None
    image_url: str | None = None
    profile: str | None = None
    profile_reason: str | None = None
    worker_id: str = ""
    error_code: str | None = None
    total_s: float = 0.0
    # The outbox: when the job reached the queue (None: not yet; the bot publishes it again).
    published_at: float | None = None
    # The user's message that asked for it (the picture replies to it, in groups) and the id
    # Telegram gave the picture once it was sent (inline mode shares it by that id).
    request_message_id: int | None = None
    file_id: str | None = None
    # A status posted outside the bot's own chat messages (the answer to a guest query, in a chat
    # the bot may not be a member of): Telegram's id of that inline message, which is edited into
    # the picture (None: the status, if any, is the chat message ``status_message_id``).
    inline_message_id: str | None = None
    # A credit bought with Stars was spent on it (``CreditStore.spend_credit`` sets it).
    paid_credit: bool = False
    # The lane chosen at admission (``domain.lanes``); what the allowance counts.
    lane: Lane = Lane.PRIORITY

    @classmethod
    def from_job(cls, job: Job, request_message_id: int | None = None) -> JobRecord:
        return cls(
            **job.ref_fields(),
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            width=job.width,
            height=job.height,
            seed=job.seed,
            quality=job.quality,
            created_at=job.created_at,
            request_message_id=request_message_id,
            paid_credit=job.paid_credit,
            lane=job.lane,
        )

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def owned_by(self, user_id: int) -> bool:
        """Whether ``user_id`` asked for this job: only its owner may cancel it."""
        return self.user_id == user_id

    def reachable_by(self, user_id: int, chat_id: int | None) -> bool:
        """Whether a button pressed by ``user_id`` under a message in ``chat_id`` may act on this
        job (send its original, repeat it, report it): the owner's own job, or a job asked for
        in that very group, which its members share. Callback data is whatever a client sends
        (a modified one can send any job id), so this is checked on every press; ``chat_id``
        is the chat Telegram says the button's message is in, which a client cannot choose.
        In a private chat the chat id is the user's own id, so a job made there is reachable
        only by its owner; ``None`` (a message sent in inline mode) leaves the owner alone.
        A guest job (asked for in guest mode: it has an inline message) is its caller's alone:
        its chat is not the bot's, and its id may be another chat's of the bot (a guest query
        in a private chat carries the other user's id, the id of their own chat with the bot)."""
        shared = chat_id is not None and chat_id == self.chat_id and self.inline_message_id is None
        return self.owned_by(user_id) or shared

    @classmethod
    def from_row(cls, row: Row) -> JobRecord:
        """A record from a database row with one column per field (enums stored as values)."""
        data = {name: row[name] for name in JOB_COLUMNS}
        data["quality"] = Quality(data["quality"])
        data["locale"] = Locale(data["locale"])
        data["state"] = JobState(data["state"])
        data["paid_credit"] = bool(data["paid_credit"])  # SQLite keeps it as 0/1
        data["lane"] = Lane(data["lane"]) if data["lane"] in set(Lane) else Lane.PRIORITY
        return cls(**data)

    def row(self) -> tuple[Any, ...]:
        """The record as database values, in ``JOB_COLUMNS`` order (enums as their values)."""
        values = (getattr(self, name) for name in JOB_COLUMNS)
        return tuple(v.value if isinstance(v, Enum) else v for v in values)

    def job(self) -> Job:
        """The job this record was made from (to publish it again from the outbox)."""
        return Job(
            job_id=self.job_id,
            user_id=self.user_id,
            chat_id=self.chat_id,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            width=self.width,
            height=self.height,
            seed=self.seed,
            # A paid job asks for full quality (``SpendCredits.spend_on``); the record keeps what
            # the user asked for, which a repeat ("new seed") asks for again.
            quality=Quality.QUALITY if self.paid_credit else self.quality,
            locale=self.locale,
            created_at=self.created_at,
            status_message_id=self.status_message_id,
            paid_credit=self.paid_credit,
            lane=self.lane,
        )


JOB_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(JobRecord))


@dataclass(frozen=True)
class Outcome:
    """A job's result as the store keeps it."""

    state: JobState
    finished_at: float
    worker_id: str = ""
    image_key: str | None = None
    image_url: str | None = None
    profile: str | None = None
    profile_reason: str | None = None
    error_code: str | None = None
    total_s: float = 0.0

    @classmethod
    def from_result(cls, result: Result) -> Outcome:
        done = result.status == JobStatus.DONE and bool(result.image_key)
        code = result.error_code.value if isinstance(result.error_code, ErrorCode) else result.error_code
        return cls(
            state=JobState.DONE if done else JobState.FAILED,
            finished_at=result.finished_at,
            worker_id=result.worker_id,
            image_key=result.image_key,
            image_url=result.image_url,
            profile=result.profile,
            profile_reason=result.profile_reason,
            error_code=None if done else (code or ErrorCode.GENERATION_FAILED.value),
            total_s=result.timings.total_s,
        )


def apply_outcome(record: JobRecord, outcome: Outcome) -> JobRecord:
    """The record after its result: a cancelled job stays cancelled (its picture is not shown).
    The record keeps the size that was asked for, so that "new seed" asks for it again."""
    state = JobState.CANCELLED if record.state == JobState.CANCELLED else outcome.state
    return replace(
        record,
        state=state,
        finished_at=outcome.finished_at,
        worker_id=outcome.worker_id or record.worker_id,
        image_key=outcome.image_key,
        image_url=outcome.image_url,
        profile=outcome.profile,
        profile_reason=outcome.profile_reason,
        error_code=outcome.error_code,
        total_s=outcome.total_s,
    )


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class UserLimits:
    max_in_flight: int = 3  # jobs queued or running per user (0: no cap)
    per_minute: int = 10  # jobs accepted per user in any 60 s (0: no cap)
    window_s: float = 60.0
    # A job with no result after this long stops holding a slot (its result may have been lost).
    expiry_s: float = 3600.0


def check_admission(
    limits: UserLimits,
    *,
    now: float,
    active_created: Sequence[float],
    recent_created: Sequence[float],
    requested: int = 1,
) -> None:
    """Raise ``LimitExceeded`` unless ``requested`` more jobs fit the user's limits.

    ``active_created``: creation times of the user's queued or running jobs;
    ``recent_created``: creation times of all the user's jobs (any state) in the rate window.
    """
    in_flight = sum(1 for t in active_created if now - t < limits.expiry_s)
    if limits.max_in_flight and in_flight + requested > limits.max_in_flight:
        raise TooManyJobsInFlight(limit=limits.max_in_flight, in_flight=in_flight, requested=requested)
    if limits.per_minute:
        window = sorted(t for t in recent_created if now - t < limits.window_s)
        if len(window) + requested > limits.per_minute:
            # The oldest jobs must leave the window until the requested ones fit.
            must_leave = len(window) + requested - limits.per_minute
            # Asking for more than the whole budget: the whole window.
            retry = limits.window_s if must_leave > len(window) else window[must_leave - 1] + limits.window_s - now
            raise RateLimited(limit=limits.per_minute, retry_after=max(1, math.ceil(retry)))


# --------------------------------------------------------------------------- stats and the port


@dataclass(frozen=True)
class StoreStats:
    submitted: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    active: int = 0
    users: int = 0
    blocked_users: int = 0
    workers: dict[str, float] = field(default_factory=dict)  # worker id -> last seen
    banned_users: int = 0
