"""The bot's wing of the composition root: the Telegram adapter's parts wired to this process's ports.

``build_telegram`` takes what the rest of the root already built (``TelegramParts``: the settings,
the ports, the use cases the bot shares with other roles) and wires the user store, the one
outbound sender, the live status board, the front and the consumer that delivers results. It is
imported only by a process that runs the bot, so a worker never loads aiogram.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol

from config import factories
from config.settings import Settings, TelegramMode
from domain.ports import Generator, JobQueue, Metrics, Storage, Tracer
from domain.use_cases import DeliverResults, PublishOutbox, SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob
from domain.use_cases.outcomes import RecordOutcomes
from domain.use_cases.vet import VetEvents
from domain.users import UserLimits
from domain.waits import WaitEstimator

if TYPE_CHECKING:
    from adapters.http.server import HttpEndpoint
    from adapters.telegram.i18n import UiTexts
    from adapters.telegram.runtime import TelegramRuntime


class TelegramParts(Protocol):
    """What the bot's wing needs from the rest of the composition root."""

    settings: Settings
    role: str

    @property
    def queue(self) -> JobQueue: ...
    @property
    def storage(self) -> Storage: ...
    @property
    def generator(self) -> Generator: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def tracer(self) -> Tracer: ...
    @property
    def translator(self) -> UiTexts: ...
    @property
    def http(self) -> HttpEndpoint: ...
    @property
    def submit(self) -> SubmitPrompt: ...


def build_telegram(parts: TelegramParts) -> TelegramRuntime:
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

    s = parts.settings
    bot = factories.bot(s)
    health = TelegramHealth(
        str(s.telegram_mode), on_error=parts.metrics.telegram_api_error, on_state=parts.metrics.telegram_up
    )
    bot.session.middleware(health.middleware())  # sees every Bot API answer
    parts.http.readiness["telegram"] = health.check
    stores = factories.user_stores(s)
    store = stores.store
    if stores.is_ready is not None:
        parts.http.readiness["database"] = stores.is_ready

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
        submit=parts.submit,
        queue=parts.queue,
        storage=parts.storage,
        store=store,
        sender=sender,
        t=parts.translator,
        board=board,
        config=config,
        estimator=WaitEstimator(
            max_batch=s.max_batch,
            # a picture: its chat action, the photo and the status's removal
            send_s=3.0 / max(0.1, s.send_rate_global),
        ),
    )
    if parts.role == "all":  # this process's own generator; a bot-only one learns it from results
        front.generator_kind = factories.generator_kind(parts.generator)
    announcer = TelegramAnnouncer(front)
    front.admit = AdmitJobs(
        parts.submit, store, announcer, limits=config.limits, clock=front.clock, metrics=parts.metrics
    )
    front.cancel_job = CancelJob(store, parts.queue, announcer, clock=front.clock)
    stop_delivery = asyncio.Event()
    deliver = DeliverResults(
        StoppableEvents(parts.queue, stop_delivery),  # the queue, whose wait for events ends on stop
        RecordOutcomes(TelegramNotifier(front), store, clock=front.clock),
        stores.delivery_log or factories.memory_delivery_log(),
        renew_every_s=max(0.1, s.delivery_lease_s / 3),
        metrics=parts.metrics,
        tracer=parts.tracer,
        vet=VetEvents(store, parts.storage, metrics=parts.metrics),  # the record is the authority
    )
    outbox = PublishOutbox(
        parts.queue,
        store,
        parts.submit,
        expiry_s=config.limits.expiry_s,
        on_expired=front.never_queued,
    )
    webhook = None
    if s.telegram_mode == TelegramMode.WEBHOOK:
        webhook = Webhook(s.telegram_webhook_url, s.telegram_webhook_path, s.telegram_webhook_secret.get_secret_value())
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
        http=parts.http,
        queue_refresh_s=s.queue_refresh_s,
        link_warning=link_warning(s),
        stop_grace_s=s.shutdown_grace_s,
        health=health,
    )
