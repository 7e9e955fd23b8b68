"""The composition root: the one place that builds the parts of a process and wires them together.

The parts are declared in ``config/container.py`` (a dependency-injector container: one
``Selector`` per port, keyed by the settings, every provider lazy). ``Components(settings,
role=...)`` is the typed face of that container that ``app.py`` and the tests use: it hands out
each part (built on first use, the same instance afterwards), starts and stops the ones that
run (the container's ``Resource`` providers), and wires the bot's wing
(``config/telegram_wiring.py``). A part never asked for is never built (nor imported: the bot
role loads no torch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dependency_injector import providers

from config import factories
from config.container import Container
from config.settings import GeneratorBackend, Settings
from domain.ports import Generator, ImageCheck, JobQueue, Metrics, PromptTranslator, QualityPolicy, Storage, Tracer
from domain.quality import QualityProfile
from domain.safety import PromptFilter
from domain.safety_gate import SafetyGate
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

# The parts that start and stop (the container's ``running_<part>`` resources).
Running = Literal["metrics", "tracer", "http", "queue", "storage", "prompt_translator", "generator", "image_check"]


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
        self.started = False  # readiness: set once every part of the role has started
        self.phase = "starting"  # what the process waits for while it starts (readiness says it)
        self.container = Container(settings=settings, role=role, started=self._readiness_of_start)
        c = self.container
        if queue is not None:
            c.queue.override(providers.Object(queue))
        if storage is not None:
            c.storage.override(providers.Object(storage))
        if generator is not None:  # its backend is what it says it is, not the settings' choice
            c.generator.override(providers.Object(generator))
            c.generator_backend.override(providers.Object(factories.backend_of(generator, settings)))
        if prompt_translator is not None:
            c.prompt_translator.override(providers.Object(prompt_translator))
        self._running: list[providers.Resource[object]] = []

    @classmethod
    def for_one_picture(cls, settings: Settings, folder: Path) -> Components:
        """The parts of ``app.py generate``: the worker's, on an in-process queue and a
        throwaway folder, whatever the settings say about queue and storage."""
        from adapters.embedded.storage import LocalFolderStorage

        return cls(settings, role="generate", queue=factories.memory_queue(), storage=LocalFolderStorage(folder))

    # --- starting and stopping ----------------------------------------------------------------
    async def start(self, part: Running) -> None:
        """Start ``part`` (built first if it was not); ``stop`` stops it again."""
        resource: providers.Resource[object] = getattr(self.container, f"running_{part}")
        await resource.async_()
        self._running.append(resource)

    def runner(self, part: Running) -> _Runner:
        """``part`` as something with ``start()``, for ``app._start_when_reachable``, which
        retries the start while the service behind the part is unreachable."""
        return _Runner(self, part)

    async def stop(self) -> None:
        """Stop every part started, the last started first (a failed stop is logged, and the
        others still stop)."""
        while self._running:
            shutdown = self._running.pop().shutdown()
            if shutdown is not None:
                await shutdown

    # --- ports ------------------------------------------------------------------------------------
    @property
    def queue(self) -> JobQueue:
        return self.container.queue()

    @property
    def storage(self) -> Storage:
        return self.container.storage()

    @property
    def generator_backend(self) -> GeneratorBackend:
        """The generator in use: GENERATOR, with ``auto`` decided (once, and only in a process
        that generates), or the one given."""
        return self.container.generator_backend()

    @property
    def generator(self) -> Generator:
        return self.container.generator()

    @property
    def prompt_translator(self) -> PromptTranslator:
        return self.container.prompt_translator()

    @property
    def metrics(self) -> Metrics:
        return self.container.metrics()

    @property
    def tracer(self) -> Tracer:
        return self.container.tracer()

    @property
    def prompt_filter(self) -> PromptFilter | None:
        return self.container.prompt_filter()

    @property
    def image_check(self) -> ImageCheck:
        return self.container.image_check()

    @property
    def user_stores(self) -> factories.UserStores:
        """The user store USER_STORE names, and what shares its database."""
        return self.container.user_stores()

    # --- use cases --------------------------------------------------------------------------------
    @property
    def limits(self) -> Limits:
        return self.container.limits()

    @property
    def profiles(self) -> dict[str, QualityProfile]:
        return self.container.profiles()

    @property
    def policy(self) -> QualityPolicy:
        return self.container.policy()

    @property
    def calibrate(self) -> CalibrateSpeed | None:
        """The worker's calibration at start (None: CALIBRATION=off, or a generator that cannot
        time itself): the policy then starts from this worker's own figures."""
        return self.container.calibrate()

    @property
    def safety_gate(self) -> SafetyGate:
        return self.container.safety_gate()

    @property
    def submit(self) -> SubmitPrompt:
        return self.container.submit()

    @property
    def understand(self) -> UnderstandPrompts:
        return self.container.understand()

    @property
    def worker(self) -> ProcessJobs:
        return self.container.worker()

    @property
    def watch_backlog(self) -> WatchBacklog:
        return self.container.watch_backlog()

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
    @property
    def translator(self) -> UiTexts:
        """The bot's texts in the user's language (Fluent catalogues)."""
        return self.container.translator()

    @property
    def http(self) -> HttpEndpoint:
        """/healthz, /readyz (started, the queue, and the database of a shared user store),
        /metrics, and /files for the local-folder storage's links."""
        return self.container.http()

    @cached_property
    def telegram(self) -> TelegramRuntime:
        """The bot's wing, wired in ``config/telegram_wiring.py`` from this process's parts."""
        from config.telegram_wiring import build_telegram

        return build_telegram(self)


class _Runner:
    """One part of ``Components`` as ``app._start_when_reachable`` starts it; named after the
    part itself in its log lines."""

    def __init__(self, parts: Components, part: Running) -> None:
        self.parts, self.part = parts, part

    @property
    def name(self) -> str:
        return type(getattr(self.parts, self.part)).__name__

    async def start(self) -> None:
        await self.parts.start(self.part)


def _downloaded_bytes() -> int:
    from adapters.huggingface.hub import downloaded_bytes

    return downloaded_bytes()
