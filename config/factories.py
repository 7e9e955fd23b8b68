"""One function per adapter, building it from the settings. The composition root
(``config/bootstrap.py``) calls them; nothing else builds an adapter.

Adapters are imported inside their function, so a bot-only process never imports torch,
diffusers or any adapter it does not use.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import SecretStr

from config.settings import GeneratorBackend, Settings, UserStoreBackend
from domain.models import GeneratorKind, Quality
from domain.policy import AdaptivePolicy, FixedPolicy
from domain.ports import (
    CreditStore,
    DeliveryLog,
    Generator,
    JobQueue,
    Metrics,
    PromptReader,
    PromptTranslator,
    QualityPolicy,
    SpeedProbe,
    Storage,
    Tracer,
    UserStore,
)
from domain.quality import DEFAULT_PROFILES, QualityProfile
from domain.use_cases.calibrate import CalibrateSpeed
from domain.validation import Limits

if TYPE_CHECKING:
    from aiogram import Bot

    from adapters.embedded.storage import LocalFolderStorage
    from adapters.http.server import HttpEndpoint
    from adapters.kafka.queue import KafkaJobQueue
    from adapters.kafka.security import KafkaSecurity
    from adapters.postgres.coordination import PostgresSendCoordination
    from adapters.telegram.i18n import UiTexts
    from adapters.wuerstchen.generator import WuerstchenGenerator


log = logging.getLogger(__name__)


def _secret(value: SecretStr) -> str | None:
    return value.get_secret_value() or None


def job_id_secret(settings: Settings) -> bytes:
    """The key of the job ids (``domain.models.job_id_for``): JOB_ID_SECRET, or else one derived
    from the bot token with a fixed label, so that bot hosts sharing the token agree on the ids
    of a message handed to two of them without any new setting, and the token itself never
    leaves this function."""
    given = settings.job_id_secret.get_secret_value()
    if given:
        return given.encode()
    token = settings.telegram_bot_token.get_secret_value().encode()
    return hmac.new(token, b"prompt2pic job ids v1", hashlib.sha256).digest()


def default_worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


# --- queue -------------------------------------------------------------------------------------


def counted_kafka_queue(settings: Settings, metrics: Metrics) -> JobQueue:
    """The Kafka queue as the port; its dead letters are counted (an alert watches them)."""
    queue = kafka_queue(settings)
    queue.on_dead_letter = metrics.dead_lettered
    return as_queue(queue)


def as_queue(adapter: object) -> JobQueue:
    """A queue adapter as the port. The adapters return lists of their own delivery class, which
    mypy does not take for ``list[Delivery]`` (lists are invariant): structurally they match."""
    return cast("JobQueue", adapter)


def memory_queue(state_file: Path | None = None, relaxed_every: int = 4) -> JobQueue:
    """The in-process queue; with a file it keeps owed work across restarts."""
    from adapters.embedded.queue import MemoryJobQueue

    return as_queue(MemoryJobQueue(state_file, relaxed_every=relaxed_every))


def kafka_security(settings: Settings) -> KafkaSecurity:
    from adapters.kafka.security import KafkaSecurity

    return KafkaSecurity(
        protocol=settings.kafka_security_protocol.value,
        mechanism=settings.kafka_sasl_mechanism.value,
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ca_file=settings.kafka_ssl_ca_file,
        cert_file=settings.kafka_ssl_cert_file,
        key_file=settings.kafka_ssl_key_file,
    )


def kafka_queue(settings: Settings) -> KafkaJobQueue:
    from adapters.kafka.queue import KafkaJobQueue

    return KafkaJobQueue(
        settings.kafka_bootstrap_servers,
        requests_topic=settings.kafka_requests_topic,
        results_topic=settings.kafka_results_topic,
        dead_letter_topic=settings.kafka_dead_letter_topic,
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        worker_group=settings.kafka_worker_group,
        bot_group=settings.kafka_bot_group,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        max_deliveries=settings.kafka_max_deliveries,
        relaxed_every=settings.lanes_relaxed_every,
        client_id=f"prompt2pic-{default_worker_id(settings)}",
        # Static membership: a restarted worker with the same WORKER_ID gets its partitions back
        # without a rebalance of the whole group.
        group_instance_id=settings.worker_id or None,
        security=kafka_security(settings),
    )


# --- storage -----------------------------------------------------------------------------------


def local_storage(settings: Settings) -> LocalFolderStorage:
    from adapters.embedded.storage import LocalFolderStorage

    key = settings.link_signing_key.get_secret_value().encode() or None
    return LocalFolderStorage(
        settings.local_storage_dir,
        public_base_url=settings.public_base_url or None,
        link_ttl_s=settings.link_ttl_s,
        signing_key=key,
    )


def s3_storage(settings: Settings) -> Storage:
    from adapters.s3.storage import S3Storage

    return S3Storage(
        settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url or None,
        public_endpoint_url=settings.s3_public_endpoint_url or None,
        region=settings.s3_region,
        access_key_id=_secret(settings.s3_access_key_id),
        secret_access_key=_secret(settings.s3_secret_access_key),
        link_ttl_s=settings.link_ttl_s,
        connect_timeout_s=settings.s3_connect_timeout_s,
        read_timeout_s=settings.s3_read_timeout_s,
        max_attempts=settings.s3_max_attempts,
        expire_days=settings.s3_expire_days,
    )


# --- generator ---------------------------------------------------------------------------------

# How to get the real model, for the placeholder's start-up warning (and the README says the same).
REAL_MODEL_HOWTO = (
    'pip install -e ".[worker]" (on a machine without an NVIDIA GPU, first the CPU build of torch: '
    "pip install torch --index-url https://download.pytorch.org/whl/cpu), then start again with hub "
    "access: the first start downloads the Würstchen weights (about 12.8 GB; the log says the exact "
    "size and the progress) into the Hugging Face cache, {cache} (HF_HOME moves it)"
)


def choose_generator(settings: Settings) -> GeneratorBackend:
    """The generator GENERATOR names; for ``auto``, the real Würstchen model when the worker extra
    is installed and its weights are in the Hugging Face cache or the hub answers, else the
    placeholder. Says at start-up, as a warning, when the pictures will not be the model's."""
    from adapters.huggingface.hub import hub_cache_from_env

    backend = settings.generator
    cache = hub_cache_from_env()
    if backend == GeneratorBackend.AUTO:
        from adapters.wuerstchen.availability import check_real_model

        check = check_real_model(settings.wuerstchen_prior, settings.wuerstchen_decoder, cache_dir=cache)
        if check.usable:
            log.info("GENERATOR=auto: the real Würstchen model (%s)", check.summary())
            return GeneratorBackend.WUERSTCHEN
        log.warning(
            "GENERATOR=auto found no image model (%s): pictures are PLACEHOLDERS, Pillow drawings captioned as "
            "such, not generated images. To get real pictures: %s.",
            check.summary(),
            REAL_MODEL_HOWTO.format(cache=cache),
        )
        return GeneratorBackend.FAKE
    if backend == GeneratorBackend.FAKE:
        log.warning(
            "GENERATOR=fake: pictures are PLACEHOLDERS, Pillow drawings captioned as such, not generated "
            "images. To get real pictures: GENERATOR=auto (the default) or wuerstchen, and %s.",
            REAL_MODEL_HOWTO.format(cache=cache),
        )
    elif backend == GeneratorBackend.TINY:
        log.warning(
            "GENERATOR=tiny: the Würstchen pipeline on RANDOM TEST WEIGHTS; its pictures are noise and its "
            "translations gibberish, and both are captioned as such. For real pictures: GENERATOR=auto or "
            "wuerstchen, and %s.",
            REAL_MODEL_HOWTO.format(cache=cache),
        )
    return backend


def backend_of(generator: Generator, settings: Settings) -> GeneratorBackend:
    """The backend of a generator given ready-made (tests, the one-picture command)."""
    kind = generator_kind(generator)
    if kind is not None:
        return {
            GeneratorKind.REAL: GeneratorBackend.WUERSTCHEN,
            GeneratorKind.TINY: GeneratorBackend.TINY,
            GeneratorKind.PLACEHOLDER: GeneratorBackend.FAKE,
        }[kind]
    return GeneratorBackend.FAKE if settings.generator == GeneratorBackend.AUTO else settings.generator


def generator_kind(generator: Generator) -> GeneratorKind | None:
    """What ``generator`` makes (real, tiny, placeholder), when it says (test doubles may not)."""
    kind = getattr(generator, "kind", None)
    return GeneratorKind(kind) if kind is not None else None


def fake_generator(settings: Settings) -> Generator:
    from adapters.embedded.generator import FakeGenerator

    return FakeGenerator(max_batch=settings.max_batch)


def wuerstchen_generator(settings: Settings, tiny: bool = False) -> WuerstchenGenerator:
    from adapters.huggingface.hub import hub_cache_from_env
    from adapters.wuerstchen.generator import parse_warmup

    options: dict[str, Any] = dict(
        device=settings.generator_device,
        dtype=settings.generator_dtype,
        threads=settings.generator_threads,
        compile=settings.generator_compile,
        compile_mode=settings.generator_compile_mode or None,
        channels_last={"on": True, "off": False}.get(settings.generator_channels_last),
        png_threads=settings.generator_png_threads,
        compile_cache_dir=settings.compile_cache_dir,
        max_batch=settings.max_batch,
        warmup=parse_warmup(settings.generator_warmup),
    )
    cls, reason = _generator_backend(settings, options, tiny)
    if tiny:  # built on the generation thread at start(), never on the event loop
        gen = cls.tiny(settings.tiny_model_dir, **options)
    else:
        # The cache that GENERATOR=auto looked in, as the environment names it now.
        gen = cls(
            settings.wuerstchen_prior,
            settings.wuerstchen_decoder,
            cache_dir=hub_cache_from_env(),
            prior_revision=settings.wuerstchen_prior_revision,
            decoder_revision=settings.wuerstchen_decoder_revision,
            **options,
        )
    gen.backend_reason = reason
    return gen


def _generator_backend(
    settings: Settings, options: dict[str, Any], tiny: bool
) -> tuple[type[WuerstchenGenerator], str]:
    """The generator class GENERATOR_BACKEND chooses (torch, or OpenVINO on a CPU), and why;
    the OpenVINO generator's own options are added to ``options``."""
    from adapters.openvino.backend import OPENVINO, choose_backend
    from adapters.wuerstchen.generator import WuerstchenGenerator

    backend, reason = choose_backend(settings.generator_backend, settings.generator_device, tiny=tiny)
    log.info("GENERATOR_BACKEND=%s: %s (%s)", settings.generator_backend, backend, reason)
    if backend != OPENVINO:
        return WuerstchenGenerator, reason
    from adapters.openvino.generator import OpenVinoGenerator

    options.update(cache_dir_ov=settings.compile_cache_dir / "openvino", int8_weights=settings.openvino_int8_weights)
    return OpenVinoGenerator, reason


def translator_kind(settings: Settings, backend: GeneratorBackend) -> str:
    """Which prompt translator goes with ``backend``: MarianMT (``marian``) for Würstchen, its tiny
    random-weight twin (``tiny``) for the tiny model; none (``identity``) for the placeholder (no
    torch) or with PROMPT_TRANSLATION=off."""
    if settings.prompt_translation == "off" or backend == GeneratorBackend.FAKE:
        return "identity"
    return "tiny" if backend == GeneratorBackend.TINY else "marian"


def identity_translator() -> PromptTranslator:
    from adapters.embedded.translator import IdentityTranslator

    return IdentityTranslator()


def marian_translator(settings: Settings, tiny: bool = False) -> PromptTranslator:
    from adapters.marian.translator import MarianTranslator

    options: dict[str, Any] = dict(
        device=settings.generator_device,
        dtype=settings.prompt_translation_dtype,
        threads=settings.generator_threads,
        beams=settings.prompt_translation_beams,
    )
    if tiny:
        return MarianTranslator.tiny(settings.tiny_translation_model_dir, **options)
    return MarianTranslator(settings.prompt_translation_model, revision=settings.prompt_translation_revision, **options)


def prompt_reader(generator: Generator) -> PromptReader | None:
    """The generator, when it can tell what its text encoder reads of a prompt (Würstchen's CLIP)."""
    return generator if callable(getattr(generator, "unread", None)) else None  # type: ignore[return-value]  # checked: it has unread()


def model_name(settings: Settings, backend: GeneratorBackend | None = None) -> str:
    """What the image metadata names as the model."""
    backend = backend or settings.generator
    if backend == GeneratorBackend.WUERSTCHEN:
        return f"wuerstchen-v2:{settings.wuerstchen_prior}+{settings.wuerstchen_decoder}"
    return {"tiny": "tiny-wuerstchen"}.get(backend.value, backend.value)


def profiles(settings: Settings) -> dict[str, QualityProfile]:
    out = dict(DEFAULT_PROFILES)
    for name, override in settings.quality_profiles.items():
        base = out.get(name, DEFAULT_PROFILES[Quality.QUALITY])
        fields: dict[str, Any] = {
            k: (int(v) if k in ("prior_steps", "decoder_steps", "max_side") else float(v)) for k, v in override.items()
        }
        out[name] = replace(base, name=name, **fields)
    return out


def quality_policy(settings: Settings, profiles: dict[str, QualityProfile]) -> QualityPolicy:
    if settings.quality_policy == "fixed":
        return FixedPolicy(profiles, default=settings.default_quality, cap=settings.quality_cap)
    return AdaptivePolicy(
        dict(settings.seconds_per_image),
        target_wait_s=settings.target_wait_s,
        profiles=profiles,
        workers=settings.policy_workers,
        cap=settings.quality_cap,
    )


def calibration(
    settings: Settings,
    generator: Generator,
    policy: QualityPolicy,
    profiles: dict[str, QualityProfile],
    metrics: Metrics,
) -> CalibrateSpeed | None:
    """The worker's calibration at start (CALIBRATION=auto), for a generator that can time
    itself (Würstchen); None: the policy starts from SECONDS_PER_IMAGE."""
    if settings.calibration == "off" or not callable(getattr(generator, "time_one", None)):
        return None
    from adapters.embedded.speed_cache import JsonSpeedCache

    return CalibrateSpeed(
        probe=cast("SpeedProbe", generator),
        profiles=profiles,
        policy=policy,
        cache=JsonSpeedCache(settings.calibration_cache),
        width=settings.default_width,
        height=settings.default_height,
        budget_s=settings.calibration_budget_s,
        metrics=metrics,
    )


def otel_metrics(settings: Settings, role: str) -> Metrics:
    from adapters.otel.metrics import OtelMetrics

    return OtelMetrics(role=role, otlp_endpoint=settings.otlp_endpoint, answer_limit_s=2 * settings.target_wait_s)


def otel_tracer(settings: Settings, role: str) -> Tracer:
    from adapters.otel.tracing import OtelTracer

    return OtelTracer(role=role, otlp_endpoint=settings.otlp_endpoint, set_global=True)


def limits(settings: Settings) -> Limits:
    return Limits(
        max_prompt_chars=settings.max_prompt_chars,
        min_side=settings.min_side,
        max_side=settings.max_side,
    )


def memory_delivery_log() -> DeliveryLog:
    from adapters.embedded.delivery_log import MemoryDeliveryLog

    return MemoryDeliveryLog()


def translator() -> UiTexts:
    from adapters.telegram.i18n import UiTexts

    return UiTexts()


# --- the Telegram front's own stores -------------------------------------------------------------


def instance_name(settings: Settings) -> str:
    """This bot instance's stable name (``WORKER_ID``, else the host name): the owner of its
    delivery claims, so that the instance restarted takes over its own unconfirmed claims at once."""
    return settings.worker_id or socket.gethostname()


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class DurableDeliveryLog(DeliveryLog, Startable, Protocol):
    """A delivery log kept in the user store's database."""


@dataclass(frozen=True)
class UserStores:
    """The user store USER_STORE names, and what shares its database."""

    store: UserStore
    delivery_log: DurableDeliveryLog | None  # None: the memory store (the log is in memory too)
    coordination: PostgresSendCoordination | None = None  # PostgreSQL: limits shared by bot instances
    is_ready: Callable[[], bool] | None = None  # a database server: ready while it is reachable

    @property
    def credits(self) -> CreditStore:
        """Credits bought with Stars, kept by the user store itself (every user store adapter
        implements ``CreditStore`` on the same database as the jobs)."""
        return cast(CreditStore, self.store)


COORDINATION_POOL = 3  # connections of a bot's send coordination (heartbeats, chat holds), beside the store's


def postgres_user_stores(settings: Settings) -> UserStores:
    """Shared by bot instances on any number of hosts, with the send budget they share."""
    from adapters.postgres import PostgresDatabase, PostgresDeliveryLog, PostgresUserStore
    from adapters.postgres.coordination import PostgresSendCoordination

    owner = instance_name(settings)

    def database(min_size: int, max_size: int) -> PostgresDatabase:
        return PostgresDatabase(
            settings.database_url.get_secret_value(),
            password=settings.database_password.get_secret_value() or None,
            min_size=min_size,
            max_size=max_size,
            connect_timeout_s=settings.database_connect_timeout_s,
        )

    pg = database(settings.database_pool_min, settings.database_pool_max)
    store = PostgresUserStore(pg)
    return UserStores(
        store,
        PostgresDeliveryLog(pg, lease_s=settings.delivery_lease_s, owner=owner),
        # The send budget and per-chat pacing shared by every bot instance, on a small pool of
        # their own: behind a burst of store writes holding every pooled connection, a late
        # heartbeat made the other instances count this one dead and take its share of the
        # budget while it still sent (45 calls in a second of a 30 budget, on a loaded machine).
        PostgresSendCoordination(database(1, COORDINATION_POOL), owner=owner, rate=settings.send_rate_global),
        is_ready=store.is_ready,
    )


def sqlite_user_stores(settings: Settings) -> UserStores:
    from adapters.sqlite.delivery_log import SqliteDeliveryLog
    from adapters.sqlite.user_store import SqliteUserStore, database

    db = database(settings.sqlite_path)
    owner = instance_name(settings)
    return UserStores(SqliteUserStore(db), SqliteDeliveryLog(db, lease_s=settings.delivery_lease_s, owner=owner))


def memory_user_stores() -> UserStores:
    from adapters.embedded.user_store import MemoryUserStore

    return UserStores(MemoryUserStore(), None)


def user_stores(settings: Settings) -> UserStores:
    """The user store USER_STORE names, and what shares its database (the container's
    ``user_stores`` selects among the same three)."""
    if settings.user_store == UserStoreBackend.POSTGRES:
        return postgres_user_stores(settings)
    if settings.user_store == UserStoreBackend.SQLITE:
        return sqlite_user_stores(settings)
    return memory_user_stores()


def http_endpoint(
    settings: Settings, queue: JobQueue, metrics: Metrics, storage: Storage, started: Callable[[], bool | str]
) -> HttpEndpoint:
    """/healthz, /readyz (``started``, the queue, and the database of a shared user store),
    /metrics, and /files for the local-folder storage's links."""
    from adapters.http.server import HttpEndpoint, SignedFiles

    return HttpEndpoint(
        settings.http_host,
        settings.http_port,
        readiness={"started": started, "queue": queue.is_ready},
        metrics=getattr(metrics, "prometheus", None),  # only OpenTelemetry's serves /metrics
        files=storage if isinstance(storage, SignedFiles) else None,  # the local folder's links
    )


def bot(settings: Settings) -> Bot:
    from adapters.telegram.bot import build_bot

    return build_bot(settings.telegram_bot_token.get_secret_value(), settings.telegram_api_url)
