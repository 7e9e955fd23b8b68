"""The composition root: the one place that knows which adapter serves which port.

Adapters are imported inside their factories, so a bot-only process never imports torch,
diffusers or any adapter it does not use.
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from typing import Any

from dependency_injector import containers, providers
from pydantic import SecretStr

from config import safety
from config.settings import GeneratorBackend, Settings
from domain.models import Quality
from domain.policy import AdaptivePolicy, FixedPolicy
from domain.quality import DEFAULT_PROFILES, QualityProfile
from domain.use_cases import ProcessJobs, SubmitPrompt
from domain.moderation import SafetyGate
from domain.safety import ImageAction
from domain.telemetry import NoMetrics, NoTracer
from domain.translation import UnderstandPrompts
from domain.validation import Limits


def _secret(value: SecretStr) -> str | None:
    return value.get_secret_value() or None


def default_worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


# --- queue -------------------------------------------------------------------------------------


def memory_queue(settings: Settings) -> Any:
    from adapters.memory.queue import MemoryJobQueue

    return MemoryJobQueue(settings.memory_queue_file)


def kafka_security(settings: Settings) -> Any:
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


def kafka_queue(settings: Settings) -> Any:
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
        client_id=f"prompt2pic-{default_worker_id(settings)}",
        # Static membership: a restarted worker with the same WORKER_ID gets its partitions back
        # without a rebalance of the whole group.
        group_instance_id=settings.worker_id or None,
        security=kafka_security(settings),
    )


# --- storage -----------------------------------------------------------------------------------


def local_storage(settings: Settings) -> Any:
    from adapters.memory.storage import LocalFolderStorage

    key = settings.link_signing_key.get_secret_value().encode() or None
    return LocalFolderStorage(
        settings.local_storage_dir,
        public_base_url=settings.public_base_url or None,
        link_ttl_s=settings.link_ttl_s,
        signing_key=key,
    )


def s3_storage(settings: Settings) -> Any:
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


def fake_generator(settings: Settings) -> Any:
    from adapters.memory.generator import FakeGenerator

    return FakeGenerator(max_batch=settings.max_batch)


def wuerstchen_generator(settings: Settings, tiny: bool = False) -> Any:
    from adapters.wuerstchen.generator import WuerstchenGenerator, parse_warmup

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
    if tiny:  # built on the generation thread at start(), never on the event loop
        return WuerstchenGenerator.tiny(settings.tiny_model_dir, **options)
    return WuerstchenGenerator(settings.wuerstchen_prior, settings.wuerstchen_decoder, **options)


def prompt_translator(settings: Settings) -> Any:
    """MarianMT for Würstchen, its tiny random-weight twin for the tiny model; nothing for the
    fake generator (no torch) or with PROMPT_TRANSLATION=off."""
    if settings.prompt_translation == "off" or settings.generator == GeneratorBackend.FAKE:
        from adapters.memory.translator import IdentityTranslator

        return IdentityTranslator()
    from adapters.marian.translator import MarianTranslator

    options: dict[str, Any] = dict(
        device=settings.generator_device,
        dtype=settings.prompt_translation_dtype,
        threads=settings.generator_threads,
        beams=settings.prompt_translation_beams,
    )
    if settings.generator == GeneratorBackend.TINY:
        return MarianTranslator.tiny(settings.tiny_translation_model_dir, **options)
    return MarianTranslator(settings.prompt_translation_model, **options)


def prompt_reader(generator: Any) -> Any:
    """The generator, when it can tell what its text encoder reads of a prompt (Würstchen's CLIP)."""
    return generator if callable(getattr(generator, "unread", None)) else None


def model_name(settings: Settings) -> str:
    """What the image metadata names as the model."""
    if settings.generator == "wuerstchen":
        return f"wuerstchen-v2:{settings.wuerstchen_prior}+{settings.wuerstchen_decoder}"
    return {"tiny": "tiny-wuerstchen"}.get(settings.generator.value, settings.generator.value)


def profiles(settings: Settings) -> dict[str, QualityProfile]:
    out = dict(DEFAULT_PROFILES)
    for name, override in settings.quality_profiles.items():
        base = out.get(name, DEFAULT_PROFILES[Quality.QUALITY])
        fields = {k: (int(v) if k in ("prior_steps", "decoder_steps", "max_side") else float(v)) for k, v in override.items()}
        out[name] = replace(base, name=name, **fields)
    return out


def quality_policy(settings: Settings, profiles: dict[str, QualityProfile]) -> Any:
    if settings.quality_policy == "fixed":
        return FixedPolicy(profiles, default=settings.default_quality)
    return AdaptivePolicy(
        dict(settings.seconds_per_image),
        target_wait_s=settings.target_wait_s,
        profiles=profiles,
        workers=settings.policy_workers,
    )


def otel_metrics(settings: Settings, role: str) -> Any:
    from adapters.otel.metrics import OtelMetrics

    return OtelMetrics(role=role, otlp_endpoint=settings.otlp_endpoint)


def otel_tracer(settings: Settings, role: str) -> Any:
    from adapters.otel.tracing import OtelTracer

    return OtelTracer(role=role, otlp_endpoint=settings.otlp_endpoint, set_global=True)


def limits(settings: Settings) -> Limits:
    return Limits(
        max_prompt_chars=settings.max_prompt_chars,
        min_side=settings.min_side,
        max_side=settings.max_side,
    )


def memory_delivery_log() -> Any:
    from adapters.memory.delivery_log import MemoryDeliveryLog

    return MemoryDeliveryLog()


def translator() -> Any:
    from adapters.telegram.i18n import Translator

    return Translator()


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(Settings)

    queue = providers.Selector(
        providers.Callable(lambda s: s.queue_backend.value, settings),
        memory=providers.Singleton(memory_queue, settings),
        kafka=providers.Singleton(kafka_queue, settings),
    )
    storage = providers.Selector(
        providers.Callable(lambda s: s.storage_backend.value, settings),
        local=providers.Singleton(local_storage, settings),
        s3=providers.Singleton(s3_storage, settings),
    )
    generator = providers.Selector(
        providers.Callable(lambda s: s.generator.value, settings),
        fake=providers.Singleton(fake_generator, settings),
        tiny=providers.Singleton(wuerstchen_generator, settings, tiny=True),
        wuerstchen=providers.Singleton(wuerstchen_generator, settings),
    )

    role = providers.Object("all")
    limits = providers.Singleton(limits, settings)
    profiles = providers.Singleton(profiles, settings)
    policy = providers.Singleton(quality_policy, settings, profiles)
    metrics = providers.Selector(
        providers.Callable(lambda s: "otel" if s.metrics_enabled else "none", settings),
        otel=providers.Singleton(otel_metrics, settings, role),
        none=providers.Singleton(NoMetrics),
    )
    tracer = providers.Selector(
        providers.Callable(lambda s: "otel" if s.otlp_endpoint else "none", settings),
        otel=providers.Singleton(otel_tracer, settings, role),
        none=providers.Singleton(NoTracer),
    )

    prompt_filter = providers.Singleton(safety.prompt_filter, settings)
    image_check = providers.Singleton(safety.image_check, settings)
    safety_gate = providers.Singleton(
        SafetyGate,
        prompt_filter=prompt_filter,
        image_check=image_check,
        action=providers.Callable(lambda s: ImageAction(s.safety_image_action), settings),
        metrics=metrics,
    )

    submit = providers.Singleton(
        SubmitPrompt,
        queue=queue,
        limits=limits,
        default_width=providers.Callable(lambda s: s.default_width, settings),
        default_height=providers.Callable(lambda s: s.default_height, settings),
        tracer=tracer,
        prompt_filter=prompt_filter,
        metrics=metrics,
    )
    prompt_translator = providers.Singleton(prompt_translator, settings)
    understand = providers.Singleton(
        UnderstandPrompts,
        translator=prompt_translator,
        reader=providers.Callable(prompt_reader, generator),
        metrics=metrics,
    )
    worker = providers.Singleton(
        ProcessJobs,
        queue=queue,
        generator=generator,
        storage=storage,
        policy=policy,
        worker_id=providers.Callable(default_worker_id, settings),
        model_name=providers.Callable(model_name, settings),
        max_batch=providers.Callable(lambda s: s.max_batch, settings),
        batch_wait_s=providers.Callable(lambda s: s.batch_wait_s, settings),
        storage_attempts=providers.Callable(lambda s: s.storage_attempts, settings),
        metrics=metrics,
        tracer=tracer,
        prompts=understand,
        safety=safety_gate,
    )

    delivery_log = providers.Singleton(memory_delivery_log)
    translator = providers.Singleton(translator)
