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
import time
from collections.abc import AsyncIterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from config import factories, safety
from config.settings import GeneratorBackend, Settings, TelegramMode
from domain.moderation import SafetyGate
from domain.ports import Generator, ImageCheck, JobQueue, Metrics, PromptTranslator, QualityPolicy, Storage, Tracer
from domain.quality import QualityProfile
from domain.safety import ImageAction, PromptFilter
from domain.translation import UnderstandPrompts
from domain.use_cases import DeliverResults, ProcessJobs, PublishOutbox, SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob
from domain.use_cases.backlog import WatchBacklog
from domain.use_cases.calibrate import CalibrateSpeed
from domain.use_cases.outcomes import RecordOutcomes
from domain.use_cases.vet import VetEvents
from domain.users import UserLimits
from domain.validation import Limits
from domain.waits import WaitEstimator

log = logging.getLogger(__name__)
MODEL_PROGRESS_S = 5.0  # how often the bytes downloaded so far go to the metrics while the model loads

if TYPE_CHECKING:
    from adapters.http.server import HttpEndpoint
    from adapters.telegram.i18n import Translator
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
    def translator(self) -> Translator:
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
        """The bot: its user store and delivery log, the one outbound sender, the live status
        board, the front, and the consumer that delivers results. Its webhook route (webhook
        mode) goes on the HTTP endpoint, so this is built before the endpoint starts."""
        from adapters.telegram.announcer import TelegramAnnouncer
        from adapters.telegram.bot import build_dispatcher
        from adapters.telegram.front import Front, FrontConfig
        from adapters.telegram.health import TelegramHealth
        from adapters.telegram.links import link_mode, link_warning
        from adapters.telegram.notifier import TelegramNotifier
        from adapters.telegram.runtime import StoppableEvents, TelegramRuntime, Webhook
        from adapters.telegram.sender import Sender
        from adapters.telegram.status import StatusBoard

        s = self.settings
        bot = factories.bot(s)
        health = TelegramHealth(
            str(s.telegram_mode), on_error=self.metrics.telegram_api_error, on_state=self.metrics.telegram_up
        )
        bot.session.middleware(health.middleware())  # sees every Bot API answer
        self.http.readiness["telegram"] = health.check
        stores = factories.user_stores(s)
        store = stores.store
        if stores.is_ready is not None:
            self.http.readiness["database"] = stores.is_ready

        async def blocked(chat_id: int) -> None:  # the user blocked the bot: stop sending there
            await store.mark_blocked(chat_id, time.time())

        sender = Sender(
            bot,
            rate=s.send_rate_global,
            rate_per_chat=s.send_rate_per_chat,
            group_interval_s=s.send_group_interval_s,
            max_attempts=s.send_max_attempts,
            backoff_s=s.send_backoff_s,
            on_blocked=blocked,
            shared=stores.coordination,  # several instances: shared limits
        )
        if stores.coordination is not None:
            stores.coordination.on_share = sender.set_rate_limit
        # live-status edits take at most a third of the outbound rate, whatever the load
        board = StatusBoard(sender, s.status_edit_interval_s, edits_per_s=s.send_rate_global / 3)
        config = FrontConfig(
            limits=UserLimits(
                max_in_flight=s.max_jobs_in_flight_per_user,
                per_minute=s.user_rate_per_minute,
                expiry_s=s.user_job_expiry_s,
            ),
            admins=frozenset(s.admin_ids),
            allowed=frozenset(s.allowed_user_ids),
            variations=s.variations,
            history_size=s.history_size,
            admin_chat_id=s.admin_chat_id,
            split_join_s=s.split_join_s,
            album_wait_s=s.album_wait_s,
            links=link_mode(s).value,
            translation=s.prompt_translation != "off",
        )
        front = Front(
            submit=self.submit,
            queue=self.queue,
            storage=self.storage,
            store=store,
            sender=sender,
            t=self.translator,
            board=board,
            config=config,
            estimator=WaitEstimator(
                max_batch=s.max_batch,
                # a picture: its chat action, the photo and the status's removal
                send_s=3.0 / max(0.1, s.send_rate_global),
            ),
        )
        if self.role == "all":  # this process's own generator; a bot-only one learns it from results
            front.generator_kind = factories.generator_kind(self.generator)
        announcer = TelegramAnnouncer(front)
        front.admit = AdmitJobs(
            self.submit, store, announcer, limits=config.limits, clock=front.clock, metrics=self.metrics
        )
        front.cancel_job = CancelJob(store, self.queue, announcer, clock=front.clock)
        stop_delivery = asyncio.Event()
        deliver = DeliverResults(
            StoppableEvents(self.queue, stop_delivery),  # the queue, whose wait for events ends on stop
            RecordOutcomes(TelegramNotifier(front), store, clock=front.clock),
            stores.delivery_log or factories.memory_delivery_log(),
            renew_every_s=max(0.1, s.delivery_lease_s / 3),
            metrics=self.metrics,
            tracer=self.tracer,
            vet=VetEvents(store, self.storage, metrics=self.metrics),  # the record is the authority
        )
        outbox = PublishOutbox(
            self.queue,
            store,
            self.submit,
            expiry_s=config.limits.expiry_s,
            on_expired=front.never_queued,
        )
        webhook = None
        if s.telegram_mode == TelegramMode.WEBHOOK:
            webhook = Webhook(
                s.telegram_webhook_url, s.telegram_webhook_path, s.telegram_webhook_secret.get_secret_value()
            )
        return TelegramRuntime(
            bot=bot,
            # polling: a failed update gets an honest answer; webhook: Telegram sends it again
            dispatcher=build_dispatcher(front, answer_errors=webhook is None),
            front=front,
            sender=sender,
            board=board,
            deliver=deliver,
            outbox=outbox,
            stop_delivery=stop_delivery,
            # started in this order, stopped in the reverse one
            resources=[part for part in (store, stores.delivery_log, stores.coordination) if part is not None],
            webhook=webhook,
            http=self.http,
            queue_refresh_s=s.queue_refresh_s,
            link_warning=link_warning(s),
            stop_grace_s=s.shutdown_grace_s,
            health=health,
        )


def _downloaded_bytes() -> int:
    from adapters.huggingface.hub import downloaded_bytes

    return downloaded_bytes()
