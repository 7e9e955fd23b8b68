"""The composition root's container (dependency-injector): every part of a process, declared once.

- One ``Selector`` per port, keyed by the settings: the queue (QUEUE_BACKEND), the storage
  (STORAGE_BACKEND), the generator (GENERATOR, ``auto`` decided once by ``choose_generator``),
  the user store (USER_STORE), the prompt translator (with the generator and
  PROMPT_TRANSLATION), the image check (SAFETY_IMAGE_*), the metrics and the traces.
- Every provider is lazy: a part is built on its first use, from the adapter's function in
  ``config/factories.py`` (which imports the adapter only then), so a role builds, and imports,
  only what it runs (the bot never loads torch). Singletons: one instance per process.
- What starts and stops asynchronously has a ``Resource`` provider (``running_<part>``): it
  calls ``start()`` when initialised and ``stop()`` when shut down. ``Components``
  (``config/bootstrap.py``) initialises them in the order ``app.py`` asks and shuts them down in
  reverse; ``init_resources()`` is never called, as it would start the unselected branches too.
- Typed at its edges: each provider is annotated with the port it provides, so
  ``container.queue()`` is a ``JobQueue`` to mypy (``Selector`` alone would give ``Any``).
  Tests replace a part with ``container.<part>.override(providers.Object(...))``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeVar

from dependency_injector import containers, providers

from config import factories, safety
from config.settings import GeneratorBackend, Settings
from domain.ports import Generator, ImageCheck, JobQueue, Metrics, PromptTranslator, QualityPolicy, Storage, Tracer
from domain.quality import QualityProfile
from domain.safety import ImageAction, PromptFilter
from domain.safety_gate import SafetyGate
from domain.telemetry import NoMetrics, NoTracer
from domain.translation import UnderstandPrompts
from domain.use_cases import ProcessJobs, SubmitPrompt
from domain.use_cases.backlog import WatchBacklog
from domain.use_cases.calibrate import CalibrateSpeed
from domain.validation import Limits

if TYPE_CHECKING:
    from adapters.http.server import HttpEndpoint
    from adapters.telegram.i18n import UiTexts

log = logging.getLogger(__name__)


S = TypeVar("S", bound=factories.Startable)


async def running(part: S) -> AsyncIterator[S]:
    """A part's life as a resource: started when initialised, stopped when shut down (a failed
    stop is logged, so that the other parts still stop)."""
    await part.start()
    yield part
    try:
        await part.stop()
    except Exception:
        log.exception("stopping %s failed", type(part).__name__)


def _value(key: object) -> str:
    """A settings enum as a ``Selector`` key."""
    return str(getattr(key, "value", key))


def _random_translation(translator: PromptTranslator) -> bool:
    """The translator has random test weights (GENERATOR=tiny): results say so."""
    return bool(getattr(translator, "random_weights", False))


class Container(containers.DeclarativeContainer):
    """The parts of one process (see the module docstring)."""

    settings: providers.Dependency[Settings] = providers.Dependency(instance_of=Settings)
    role: providers.Dependency[str] = providers.Dependency(instance_of=str, default="all")
    # readiness's "started" check: the process says when every part of its role has started
    started: providers.Dependency[Callable[[], bool | str]] = providers.Dependency(default=lambda: True)

    # --- telemetry ---------------------------------------------------------------------------
    metrics: providers.Provider[Metrics] = providers.Selector(
        providers.Callable(lambda s: "otel" if s.metrics_enabled else "none", settings),
        otel=providers.Singleton(factories.otel_metrics, settings, role),  # served on /metrics
        none=providers.Singleton(NoMetrics),
    )
    tracer: providers.Provider[Tracer] = providers.Selector(
        providers.Callable(lambda s: "otel" if s.otlp_endpoint else "none", settings),
        otel=providers.Singleton(factories.otel_tracer, settings, role),  # to OTLP_ENDPOINT
        none=providers.Singleton(NoTracer),
    )

    # --- ports -------------------------------------------------------------------------------
    queue: providers.Provider[JobQueue] = providers.Selector(
        providers.Callable(_value, settings.provided.queue_backend),
        kafka=providers.Singleton(factories.counted_kafka_queue, settings, metrics),
        memory=providers.Singleton(
            factories.memory_queue, settings.provided.memory_queue_file, settings.provided.lanes_relaxed_every
        ),
    )
    storage: providers.Provider[Storage] = providers.Selector(
        providers.Callable(_value, settings.provided.storage_backend),
        s3=providers.Singleton(factories.s3_storage, settings),
        local=providers.Singleton(factories.local_storage, settings),
    )
    # GENERATOR with ``auto`` decided: once, and only in a process that asks (it may look at the hub).
    generator_backend: providers.Provider[GeneratorBackend] = providers.Singleton(factories.choose_generator, settings)
    generator: providers.Provider[Generator] = providers.Selector(
        providers.Callable(_value, generator_backend),
        fake=providers.Singleton(factories.fake_generator, settings),
        tiny=providers.Singleton(factories.wuerstchen_generator, settings, tiny=True),
        wuerstchen=providers.Singleton(factories.wuerstchen_generator, settings),
    )
    prompt_translator: providers.Provider[PromptTranslator] = providers.Selector(
        providers.Callable(factories.translator_kind, settings, generator_backend),
        identity=providers.Singleton(factories.identity_translator),
        tiny=providers.Singleton(factories.marian_translator, settings, tiny=True),
        marian=providers.Singleton(factories.marian_translator, settings),
    )
    image_check: providers.Provider[ImageCheck] = providers.Selector(
        providers.Singleton(safety.image_check_kind, settings),  # once: ``auto`` may warn
        nudenet=providers.Singleton(safety.nudenet_check, settings),
        none=providers.Singleton(safety.no_image_check),
    )
    user_stores: providers.Provider[factories.UserStores] = providers.Selector(
        providers.Callable(_value, settings.provided.user_store),
        postgres=providers.Singleton(factories.postgres_user_stores, settings),
        sqlite=providers.Singleton(factories.sqlite_user_stores, settings),
        memory=providers.Singleton(factories.memory_user_stores),
    )
    prompt_filter: providers.Provider[PromptFilter | None] = providers.Singleton(safety.prompt_filter, settings)

    # --- the rules and the use cases ---------------------------------------------------------
    limits: providers.Provider[Limits] = providers.Singleton(factories.limits, settings)
    profiles: providers.Provider[dict[str, QualityProfile]] = providers.Singleton(factories.profiles, settings)
    policy: providers.Provider[QualityPolicy] = providers.Singleton(factories.quality_policy, settings, profiles)
    # None: CALIBRATION=off, or a generator that cannot time itself (the policy starts from
    # SECONDS_PER_IMAGE then).
    calibrate: providers.Provider[CalibrateSpeed | None] = providers.Singleton(
        factories.calibration, settings, generator, policy, profiles, metrics
    )
    safety_gate: providers.Provider[SafetyGate] = providers.Singleton(
        SafetyGate,
        prompt_filter=prompt_filter,
        image_check=image_check,
        action=providers.Callable(ImageAction, settings.provided.safety_image_action),
        metrics=metrics,
    )
    submit: providers.Provider[SubmitPrompt] = providers.Singleton(
        SubmitPrompt,
        queue=queue,
        limits=limits,
        default_width=settings.provided.default_width,
        default_height=settings.provided.default_height,
        tracer=tracer,
        prompt_filter=prompt_filter,
        metrics=metrics,
        job_id_secret=providers.Callable(factories.job_id_secret, settings),
    )
    understand: providers.Provider[UnderstandPrompts] = providers.Singleton(
        UnderstandPrompts,
        translator=prompt_translator,
        reader=providers.Callable(factories.prompt_reader, generator),
        metrics=metrics,
    )
    worker: providers.Provider[ProcessJobs] = providers.Singleton(
        ProcessJobs,
        queue=queue,
        generator=generator,
        storage=storage,
        policy=policy,
        worker_id=providers.Callable(factories.default_worker_id, settings),
        model_name=providers.Callable(factories.model_name, settings, generator_backend),
        generator_kind=providers.Callable(factories.generator_kind, generator),
        random_translation=providers.Callable(_random_translation, prompt_translator),
        max_batch=settings.provided.max_batch,
        relaxed_every=settings.provided.lanes_relaxed_every,
        batch_wait_s=settings.provided.batch_wait_s,
        storage_attempts=settings.provided.storage_attempts,
        max_deliveries=settings.provided.kafka_max_deliveries,
        metrics=metrics,
        tracer=tracer,
        prompts=understand,
        safety=safety_gate,
        limits=limits,  # the bot's own rules, applied again to every job taken
    )
    watch_backlog: providers.Provider[WatchBacklog] = providers.Singleton(WatchBacklog, queue, metrics)

    # --- the process's HTTP endpoint and the bot's texts -------------------------------------
    translator: providers.Provider[UiTexts] = providers.Singleton(factories.translator)
    http: providers.Provider[HttpEndpoint] = providers.Singleton(
        factories.http_endpoint, settings, queue, metrics, storage, started
    )

    # --- what starts and stops ---------------------------------------------------------------
    running_metrics: providers.Resource[Metrics] = providers.Resource(running, metrics)
    running_tracer: providers.Resource[Tracer] = providers.Resource(running, tracer)
    running_http: providers.Resource[HttpEndpoint] = providers.Resource(running, http)
    running_queue: providers.Resource[JobQueue] = providers.Resource(running, queue)
    running_storage: providers.Resource[Storage] = providers.Resource(running, storage)
    running_prompt_translator: providers.Resource[PromptTranslator] = providers.Resource(running, prompt_translator)
    running_generator: providers.Resource[Generator] = providers.Resource(running, generator)
    running_image_check: providers.Resource[ImageCheck] = providers.Resource(running, image_check)
