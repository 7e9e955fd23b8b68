"""Entities and messages of Prompt2Pic.

These are the messages that travel on the queue (jobs and their cancellations, progress events and
results; those about a job share ``JobRef``'s fields) and the values the use cases pass around.
They are pydantic models so that every message that crosses a process boundary is validated on the
way in.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Quality(StrEnum):
    """What the user asked for. ``AUTO`` lets the service choose from its load."""

    AUTO = "auto"
    FAST = "fast"
    BALANCED = "balanced"
    QUALITY = "quality"


class Locale(StrEnum):
    EN = "en"
    RU = "ru"

    @classmethod
    def from_language_code(cls, code: str | None) -> Locale:
        """Telegram gives IETF tags such as ``ru``, ``ru-RU``, ``en-GB``; anything else gets English."""
        if code and code.split("-")[0].lower() in ("ru", "uk", "be", "kk"):
            return cls.RU
        return cls.EN


class Lane(StrEnum):
    """Which line a job waits in (``domain.lanes.choose_lane`` decides it at admission): workers
    drain the priority lane first and give the relaxed lane a guaranteed share, so it never
    starves. Light users and paid credits go to priority; heavy users and those past their daily
    allowance to relaxed (never refused for that alone)."""

    PRIORITY = "priority"
    RELAXED = "relaxed"


class JobStatus(StrEnum):
    DONE = "done"
    FAILED = "failed"


class Stage(StrEnum):
    """How far a worker got with a job (``Progress.stage``); the values travel on the queue."""

    STARTED = "started"
    GENERATING = "generating"
    UPLOADING = "uploading"


class ErrorCode(StrEnum):
    """Why a job failed; the chat front turns it into a message in the user's language."""

    GENERATION_FAILED = "generation_failed"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    INVALID_JOB = "invalid_job"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    CANCELLED = "cancelled"
    QUEUE_UNAVAILABLE = "queue_unavailable"  # accepted, but never reached the queue in time
    PROMPT_REFUSED = "prompt_refused"  # the worker's prompt filter refused it (a job from elsewhere)
    IMAGE_REFUSED = "image_refused"  # the image check flagged the picture; it was not stored


def new_job_id() -> str:
    return uuid.uuid4().hex


def job_id_for(secret: bytes, *origin: object) -> str:
    """A job id derived from what asked for the job (a chat and a message id): a message handed
    over twice (a restarted bot gets the updates it had not confirmed) gives the same job.

    It is an HMAC-SHA256 keyed with the service's secret (``JOB_ID_SECRET``), cut to 32 hex
    characters like a uuid's (a button's callback data holds at most 64 bytes): chat ids and
    message ids are easy to guess (in a private chat the chat id is the user's id and message
    ids count up), so an id computed from them alone would let anyone name another user's job."""
    message = ":".join(map(str, origin)).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def now() -> float:
    return time.time()


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobRef(_Message):
    """The fields that every message about a job repeats: which job, whose, and where its user
    sees it (chat, language, and the chat message the bot edits with live status)."""

    job_id: str
    user_id: int
    chat_id: int
    locale: Locale = Locale.EN
    status_message_id: int | None = None

    def ref_fields(self) -> dict[str, Any]:
        """These fields of this message, to build another message about the same job."""
        return {name: getattr(self, name) for name in JobRef.model_fields}


class Job(JobRef):
    """One accepted prompt: what a worker needs to make the picture and the bot to deliver it."""

    job_id: str = Field(default_factory=new_job_id, min_length=1, max_length=64)
    # The prompt, size and seed are checked by the domain's rules (``validation.check_job``), at
    # the bot and again on the worker, not here: a job that breaks them still decodes, so that
    # the worker can fail it honestly (the user is told) instead of setting it aside unanswered.
    prompt: str
    negative_prompt: str = ""
    width: int
    height: int
    seed: int
    quality: Quality = Quality.AUTO
    created_at: float = Field(default_factory=now)
    attempt: int = Field(default=0, ge=0)
    # Translate the prompt into English before the (English-only) text encoders read it: the
    # user's setting; the worker's PROMPT_TRANSLATION=off turns it off for everyone.
    translate: bool = True
    # The shape the user asked for (--ar, as width / height), which a size in steps of 128 only
    # comes near: the worker keeps it within 5 % at every quality profile. 0: the size's own.
    aspect: float = 0.0
    # A credit bought with Telegram Stars was spent on this job (``domain.credits``): one
    # full-quality picture in the priority lane; given back if the job ends without a picture.
    paid_credit: bool = False
    # The lane the bot chose at admission (``domain.lanes``); older messages have none: priority.
    lane: Lane = Lane.PRIORITY


class Cancel(_Message):
    """A user withdrew a queued job. It travels on the requests stream with the job's key, so it
    reaches the worker that holds the job; a job already generating still finishes."""

    kind: Literal["cancel"] = "cancel"
    job_id: str
    user_id: int
    at: float = Field(default_factory=now)
    # The job's lane: a lane is a stream of its own (a Kafka topic), and the cancellation must
    # travel behind the job, in its stream.
    lane: Lane = Lane.PRIORITY


class TranslationStatus(StrEnum):
    """What became of a prompt before the model read it."""

    NONE = "none"  # nothing to translate: Latin script, or no letters at all
    TRANSLATED = "translated"
    FAILED = "failed"  # the translator failed: the model read the prompt as written
    OFF = "off"  # translation turned off (by the user or the service)


class GeneratorKind(StrEnum):
    """What made a picture, as the worker that made it reports it: the bot is another process,
    and it must not caption a stand-in as if it were the model's work."""

    REAL = "real"  # the Würstchen model with its trained weights
    TINY = "tiny"  # the same pipeline on random test weights: noise
    PLACEHOLDER = "placeholder"  # the Pillow drawing; no model at all


class Understood(_Message):
    """How the model read a job's prompt: the text its encoders were given, what was translated,
    and the words past the encoders' token limit (which they never read)."""

    prompt: str
    negative_prompt: str = ""
    language: str = "en"  # detected from the script: ru, uk, be, kk, en, other, none
    translation: TranslationStatus = TranslationStatus.NONE
    negative_translated: bool = False
    cut: str = ""  # the end of ``prompt`` that the text encoder did not read ("" if none)
    token_limit: int = 0  # the text encoder's limit (77 for CLIP), when known


class Timings(_Message):
    queue_wait_s: float = 0.0
    generation_s: float = 0.0
    upload_s: float = 0.0
    total_s: float = 0.0


class Progress(JobRef):
    """A worker's report on a running job, for the bot's live status."""

    kind: Literal["progress"] = "progress"
    stage: Stage
    step: int = 0
    total_steps: int = 0
    worker_id: str = ""
    at: float = Field(default_factory=now)
    # The worker's own seconds per image of the job's profile (timed at its start, then learnt
    # from its batches; 0: unknown): a bot that has seen no batch yet estimates waits from it.
    seconds_per_image: float = Field(default=0.0, ge=0.0)

    @classmethod
    def of(
        cls,
        job: Job,
        stage: Stage,
        step: int = 0,
        total_steps: int = 0,
        worker_id: str = "",
        seconds_per_image: float = 0.0,
    ) -> Progress:
        return cls(
            **job.ref_fields(),
            stage=stage,
            step=step,
            total_steps=total_steps,
            worker_id=worker_id,
            seconds_per_image=seconds_per_image,
        )


class Result(JobRef):
    """The outcome of a job: an image with its link, or an honest error."""

    kind: Literal["result"] = "result"
    status: JobStatus
    prompt: str = ""
    seed: int = 0
    width: int = 0
    height: int = 0
    image_key: str | None = None
    image_url: str | None = None
    profile: str | None = None
    profile_reason: str | None = None
    timings: Timings = Field(default_factory=Timings)
    error_code: ErrorCode | None = None
    worker_id: str = ""
    understood: Understood | None = None  # how the model read the prompt (None: not known)
    generator_kind: GeneratorKind | None = None  # what made the picture (None: an older worker)
    # The prompt was translated by a random-weight test model: gibberish, never "understood as".
    random_translation: bool = False
    # The image check flagged the picture (SAFETY_IMAGE_ACTION=spoiler): sent behind a spoiler.
    spoiler: bool = False
    flags: tuple[str, ...] = ()  # the categories it flagged
    accepted_at: float = 0.0  # when the bot accepted the job (for end-to-end latency)
    finished_at: float = Field(default_factory=now)

    @property
    def outcome(self) -> str:
        """What happened, for metrics: ``done``, ``failed``, or ``cancelled`` (the user withdrew
        the job: not a failure of the service)."""
        if self.error_code == ErrorCode.CANCELLED:
            return "cancelled"
        return self.status.value

    @classmethod
    def failure(cls, job: Job, code: ErrorCode, **extra: Any) -> Result:
        """The job failed for ``code``; ``extra``: any other Result field, validated by pydantic."""
        return cls(
            **job.ref_fields(),
            status=JobStatus.FAILED,
            prompt=job.prompt,
            seed=job.seed,
            width=job.width,
            height=job.height,
            accepted_at=job.created_at,
            error_code=code,
            **extra,
        )

    @classmethod
    def done(cls, job: Job, key: str, url: str, width: int, height: int, **extra: Any) -> Result:
        """The job's picture (``width`` x ``height``) is stored under ``key``, to be opened at
        ``url``; ``extra``: any other Result field, validated by pydantic."""
        return cls(
            **job.ref_fields(),
            status=JobStatus.DONE,
            prompt=job.prompt,
            seed=job.seed,
            width=width,
            height=height,
            image_key=key,
            image_url=url,
            accepted_at=job.created_at,
            **extra,
        )


Event = Annotated[Progress | Result, Field(discriminator="kind")]


class GenerationRequest(_Message):
    """What a generator is asked for: one image of one prompt."""

    prompt: str
    negative_prompt: str = ""
    width: int
    height: int
    seed: int
    prior_steps: int = 29
    decoder_steps: int = 12
    prior_guidance: float = 4.0
    decoder_guidance: float = 0.0


class GeneratedImage(BaseModel):
    model_config = ConfigDict(frozen=True)

    png: bytes
    width: int
    height: int


class StoredImage(_Message):
    key: str
    url: str


IMAGE_KEY_PREFIX = "images/"
"""Where in the storage the pictures live (the S3 lifecycle rule that expires them filters on it)."""


def image_key(job_id: str) -> str:
    """The storage key of a job's image: derived from the job id, so a redelivered job overwrites
    the same object instead of making a second one."""
    return f"{IMAGE_KEY_PREFIX}{job_id}.png"
