"""The composition root: the one place that builds the parts of a process and wires them together.

``Components(settings, role=...)`` builds each part on first use, from the settings alone
(``config/factories.py`` has one function per adapter), and hands out the same instance
afterwards. ``app.py`` asks it for the parts its role needs, starts them and stops them; a part
never asked for is never built (nor imported: the bot role loads no torch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from config import factories, safety
from config.settings import GeneratorBackend, Settings
from domain.moderation import SafetyGate
from domain.ports import Generator, ImageCheck, JobQueue, Metrics, PromptTranslator, QualityPolicy, Storage, Tracer
from domain.quality import QualityProfile
from domain.safety import ImageAction, PromptFilter
from domain.translation import UnderstandPrompts
from domain.use_cases import ProcessJobs, SubmitPrompt
from domain.use_cases.backlog import WatchBacklog
from domain.use_cases.calibrate import CalibrateSpeed
from domain.validation import Limits

log = logging.getLogger(__name__)
MODEL_PROGRESS_S = 5.0  # how often the bytes downloaded so far go to the metrics while the model loads

if TYPE_CHECKING:
    from adapters.http.server import HttpEndpoint
    from adapters.telegram.i18n import UiTexts
    from adapters.telegram.runtime import TelegramRuntime


class Components:
    """The parts of one process. ``role`` (bot, worker, all, or generate for one picture) names
    the process in metrics and traces. ``queue``, ``storage``, ``generator`` and
    ``prompt_translator`` replace the settings' choice (tests, and the one-picture command)."""

    def __init__(
        self,
        settings: Settings,
        *,
        role: str = "all",
        queue: JobQueue | None = None,
        storage: Storage | None = None,
        generator: Generator | None = None,
        prompt_translator: PromptTranslator | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        self._queue = queue
        self._storage = storage
        self._generator = generator
        self._prompt_translator = prompt_translator
        self.started = False  # readiness: set once every part of the role has started
        self.phase = "starting"  # what the process waits for while it starts (readiness says it)

    @classmethod
    def for_one_picture(cls, settings: Settings, folder: Path) -> Components:
        """The parts of ``app.py generate``: the worker's, on an in-process queue and a
        throwaway folder, whatever the settings say about queue and storage."""
        from adapters.embedded.storage import LocalFolderStorage

        return cls(settings, role="generate", queue=factories.memory_queue(), storage=LocalFolderStorage(folder))

    # --- ports ------------------------------------------------------------------------------------
    @cached_property
    def queue(self) -> JobQueue:
        if self._queue is not None:
            return self._queue
        queue = factories.queue(self.settings)
        if hasattr(queue, "on_dead_letter"):  # Kafka's: dead letters are counted (an alert watches them)
            queue.on_dead_letter = self.metrics.dead_lettered
        return queue

    @cached_property
    def storage(self) -> Storage:
        return self._storage if self._storage is not None else factories.storage(self.settings)

    @cached_property
    def generator_backend(self) -> GeneratorBackend:
        """The generator in use: GENERATOR, with ``auto`` decided (once, and only in a process
        that generates), or the one given."""
        if self._generator is not None:
            return factories.backend_of(self._generator, self.settings)
        return factories.choose_generator(self.settings)

    @cached_property
    def generator(self) -> Generator:
        given = self._generator
        return given if given is not None else factories.generator(self.settings, self.generator_backend)

    @cached_property
    def prompt_translator(self) -> PromptTranslator:
        given = self._prompt_translator
        return given if given is not None else factories.prompt_translator(self.settings, self.generator_backend)

    @cached_property
    def metrics(self) -> Metrics:
        return factories.metrics(self.settings, self.role)

    @cached_property
    def tracer(self) -> Tracer:
        return factories.tracer(self.settings, self.role)

    @cached_property
    def prompt_filter(self) -> PromptFilter | None:
        return safety.prompt_filter(self.settings)

    @cached_property
    def image_check(self) -> ImageCheck:
        return safety.image_check(self.settings)

    # --- use cases --------------------------------------------------------------------------------
    @cached_property
    def limits(self) -> Limits:
        return factories.limits(self.settings)

    @cached_property
    def profiles(self) -> dict[str, QualityProfile]:
        return factories.profiles(self.settings)

    @cached_property
    def policy(self) -> QualityPolicy:
        return factories.quality_policy(self.settings, self.profiles)

    @cached_property
    def calibrate(self) -> CalibrateSpeed | None:
        """The worker's calibration at start (None: CALIBRATION=off, or a generator that cannot
        time itself): the policy then starts from this worker's own figures."""
        return factories.calibration(self.settings, self.generator, self.policy, self.profiles, self.metrics)

    @cached_property
    def safety_gate(self) -> SafetyGate:
        return SafetyGate(
            prompt_filter=self.prompt_filter,
            image_check=self.image_check,
            action=ImageAction(self.settings.safety_image_action),
            metrics=self.metrics,
        )

    @cached_property
    def submit(self) -> SubmitPrompt:
        return SubmitPrompt(
            queue=self.queue,
            limits=self.limits,
            default_width=self.settings.default_width,
            default_height=self.settings.default_height,
            tracer=self.tracer,
            prompt_filter=self.prompt_filter,
            metrics=self.metrics,
            job_id_secret=factories.job_id_secret(self.settings),
        )

    @cached_property
    def understand(self) -> UnderstandPrompts:
        return UnderstandPrompts(
            translator=self.prompt_translator,
            reader=factories.prompt_reader(self.generator),
            metrics=self.metrics,
        )

    @cached_property
    def worker(self) -> ProcessJobs:
        s = self.settings
        return ProcessJobs(
            queue=self.queue,
            generator=self.generator,
            storage=self.storage,
            policy=self.policy,
            worker_id=factories.default_worker_id(s),
            model_name=factories.model_name(s, self.generator_backend),
            generator_kind=factories.generator_kind(self.generator),
            random_translation=bool(getattr(self.prompt_translator, "random_weights", False)),
            max_batch=s.max_batch,
            batch_wait_s=s.batch_wait_s,
            storage_attempts=s.storage_attempts,
            max_deliveries=s.kafka_max_deliveries,
            metrics=self.metrics,
            tracer=self.tracer,
            prompts=self.understand,
            safety=self.safety_gate,
            limits=self.limits,  # the bot's own rules, applied again to every job taken
        )

    @cached_property
    def watch_backlog(self) -> WatchBacklog:
        return WatchBacklog(self.queue, self.metrics)

    @contextlib.asynccontextmanager
    async def model_load(self) -> AsyncIterator[None]:
        """While the block loads the model: ``p2p_model_loading`` is 1 and the bytes downloaded so
        far (when the hub downloads it) are exported every few seconds."""
        progress = _downloaded_bytes if self.generator_backend == GeneratorBackend.WUERSTCHEN else (lambda: 0)
        self.metrics.model_loading(True, progress())

        async def report() -> None:
            while True:
                await asyncio.sleep(MODEL_PROGRESS_S)
                self.metrics.model_loading(True, progress())

        reporter = asyncio.create_task(report(), name="model-progress")
        try:
            yield
        finally:
            reporter.cancel()
            self.metrics.model_loading(False, progress())

    def _readiness_of_start(self) -> bool | str:
        return True if self.started else self.phase or "starting"

    # --- the process's HTTP endpoint and the Telegram front --------------------------------------
    @cached_property
    def translator(self) -> UiTexts:
        """The bot's texts in the user's language (Fluent catalogues)."""
        return factories.translator()

    @cached_property
    def http(self) -> HttpEndpoint:
        """/healthz, /readyz (started, the queue, and the database of a shared user store),
        /metrics, and /files for the local-folder storage's links."""
        from adapters.http.server import HttpEndpoint, SignedFiles

        s = self.settings
        return HttpEndpoint(
            s.http_host,
            s.http_port,
            readiness={"started": self._readiness_of_start, "queue": self.queue.is_ready},
            metrics=getattr(self.metrics, "prometheus", None),  # only OpenTelemetry's serves /metrics
            files=self.storage if isinstance(self.storage, SignedFiles) else None,  # the local folder's links
        )

    @cached_property
    def telegram(self) -> TelegramRuntime:
        """The bot's wing, wired in ``config/telegram_wiring.py`` from this process's parts."""
        from config.telegram_wiring import build_telegram

        return build_telegram(self)


def _downloaded_bytes() -> int:
    from adapters.huggingface.hub import downloaded_bytes

    return downloaded_bytes()
