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
from config.settings import Settings, StorageBackend, TelegramMode
from domain.lanes import LaneRules
from domain.ports import Generator, JobQueue, Metrics, Storage, Tracer
from domain.safety import SafetyTally
from domain.use_cases import DeliverResults, PublishOutbox, SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob
from domain.use_cases.balance import ShowBalance
from domain.use_cases.credits import SellCredits, SpendCredits
from domain.use_cases.outcomes import RecordOutcomes
from domain.use_cases.vet import VetEvents
from domain.use_cases.watch import WatchWorkers
from domain.users import UserLimits
from domain.waits import WaitEstimator

if TYPE_CHECKING:
    from aiogram import Bot

    from adapters.http.server import HttpEndpoint
    from adapters.telegram.health import TelegramHealth
    from adapters.telegram.i18n import UiTexts
    from adapters.telegram.links import LinkPolicy
    from adapters.telegram.options import BotOptions
    from adapters.telegram.payments import Payments
    from adapters.telegram.replies import Replies
    from adapters.telegram.runtime import TelegramRuntime
    from adapters.telegram.sender import Sender


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


def link_policy(s: Settings) -> LinkPolicy:
    """What picture links will be, from the setting the storage backend signs them with (a
    backend added to ``StorageBackend`` must be added here: there is no default)."""
    from adapters.telegram.links import LinkPolicy, LinkUse

    match s.storage_backend:
        case StorageBackend.S3:
            # empty: AWS S3 itself, links on amazonaws.com, which Telegram takes
            base = s.s3_public_endpoint_url or s.s3_endpoint_url
            return LinkPolicy("S3_PUBLIC_ENDPOINT_URL", base, unset=LinkUse.BUTTON)
        case StorageBackend.LOCAL:
            return LinkPolicy(
                "PUBLIC_BASE_URL",
                s.public_base_url,
                unset=LinkUse.NONE,
                unset_warning=(
                    "PUBLIC_BASE_URL is empty: pictures get no full-size link (the 'Original PNG' button "
                    "sends the file instead); set it to this app's public https URL to add links"
                ),
            )


def bot_options(s: Settings) -> BotOptions:
    from adapters.telegram.options import BotOptions

    return BotOptions(
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
        links=link_policy(s).mode().value,
        translation=s.prompt_translation != "off",
        payments=s.payments == "stars",
        lanes=LaneRules(
            relaxed_after=s.lanes_relaxed_after,
            recent_window_s=s.lanes_recent_window_s,
            daily_allowance=s.daily_allowance,
            renew_hour_utc=s.daily_allowance_renew_hour,
            relaxed_every=s.lanes_relaxed_every,
        ),
    )


def build_telegram(parts: TelegramParts) -> TelegramRuntime:
    """The bot: its user store and delivery log, the one outbound sender, the live status
    board, the handlers' parts, and the consumer that delivers results. Each part is built
    once, from the parts it uses, in the order they depend on each other (the use cases before
    what calls them): nothing is set after construction. Its webhook route (webhook mode) goes
    on the HTTP endpoint, so this is built before the endpoint starts."""
    from adapters.telegram.albums import Albums
    from adapters.telegram.announcer import TelegramAnnouncer
    from adapters.telegram.background import Background
    from adapters.telegram.bans import Bans
    from adapters.telegram.bot import HandlerParts, build_dispatcher
    from adapters.telegram.commands import Menus
    from adapters.telegram.guests import GuestAnswers, GuestPictures
    from adapters.telegram.handlers.inline import InlinePrompts
    from adapters.telegram.intake import PromptIntake
    from adapters.telegram.job_maker import JobMaker
    from adapters.telegram.outside import OutsideMessages
    from adapters.telegram.paste import SplitPaste
    from adapters.telegram.pictures import PictureSender
    from adapters.telegram.replies import Replies
    from adapters.telegram.reports import Reports
    from adapters.telegram.results import TelegramResultChannel
    from adapters.telegram.runtime import StoppableEvents, TelegramRuntime
    from adapters.telegram.status import StatusBoard
    from adapters.telegram.texts import BotTexts
    from adapters.telegram.waiting import WaitingLine
    from adapters.telegram.webhook import Webhook

    s = parts.settings
    bot = factories.bot(s)
    health = _health(parts, bot)
    stores = factories.user_stores(s)
    store = stores.store
    if stores.is_ready is not None:
        parts.http.readiness["database"] = stores.is_ready
    sender = _sender(s, bot, stores)
    # live-status edits take at most a third of the outbound rate, whatever the load
    board = StatusBoard(sender, s.status_edit_interval_s, edits_per_s=s.send_rate_global / 3)
    options = bot_options(s)
    clock = time.time
    # a picture: its chat action, the photo and the status's removal
    watch = WatchWorkers(WaitEstimator(max_batch=s.max_batch, send_s=3.0 / max(0.1, s.send_rate_global)))
    if parts.role == "all":  # this process's own generator; a bot-only one learns it from results
        watch.generator_kind = factories.generator_kind(parts.generator)
    t = parts.translator
    texts = BotTexts(t, watch, clock)
    replies = Replies(sender, t, store)
    albums = Albums(wait_s=options.album_wait_s)
    safety = SafetyTally()
    outside = OutsideMessages(sender)  # inline messages (guest mode) and ephemeral ones
    guests = GuestAnswers(outside, t)
    announcer = TelegramAnnouncer(sender, board, albums, replies, texts, guests)
    spend = SpendCredits(stores.credits, metrics=parts.metrics, clock=clock) if options.payments else None
    admit = AdmitJobs(
        parts.submit,
        store,
        announcer,
        limits=options.limits,
        lanes=options.lanes,
        clock=clock,
        metrics=parts.metrics,
        waits=watch.estimator,  # how fast jobs come, for the waits told
        credits=spend,
    )
    jobs = JobMaker(parts.submit)
    menus = Menus(sender, t, options)
    handler_parts = HandlerParts(
        options=options,
        t=t,
        texts=texts,
        replies=replies,
        sender=sender,
        board=board,
        store=store,
        queue=parts.queue,
        storage=parts.storage,
        submit=parts.submit,
        jobs=jobs,
        admit=admit,
        cancel_job=CancelJob(store, parts.queue, announcer, clock=clock, credits=spend),
        intake=PromptIntake(jobs, admit, replies, texts, safety, guests),
        watch=watch,
        safety=safety,
        reports=Reports(replies, sender, t, store, parts.storage, options, safety),
        bans=Bans(replies, t, store, options, clock),
        menus=menus,
        background=Background(),
        split_paste=SplitPaste(window_s=options.split_join_s),
        inline_prompts=InlinePrompts(),
        outside=outside,
        guests=guests,
        clock=clock,
        balance=ShowBalance(store, options.lanes, clock),
        payments=_payments(s, stores, sender, replies, t, options, parts.metrics) if options.payments else None,
    )
    channel = TelegramResultChannel(
        sender=sender,
        board=board,
        store=store,
        storage=parts.storage,
        albums=albums,
        texts=texts,
        safety=safety,
        pictures=PictureSender(sender, store, t, options, watch),
        guests=GuestPictures(sender, outside, store, t, options),
    )
    stop_delivery = asyncio.Event()
    deliver = DeliverResults(
        StoppableEvents(parts.queue, stop_delivery),  # the queue, whose wait for events ends on stop
        RecordOutcomes(channel, store, clock=clock, credits=spend),
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
        expiry_s=options.limits.expiry_s,
        on_expired=announcer.never_queued,
        credits=spend,
    )
    webhook = None
    if s.telegram_mode == TelegramMode.WEBHOOK:
        webhook = Webhook(s.telegram_webhook_url, s.telegram_webhook_path, s.telegram_webhook_secret.get_secret_value())
    return TelegramRuntime(
        bot=bot,
        # polling: a failed update gets an honest answer; webhook: Telegram sends it again
        dispatcher=build_dispatcher(handler_parts, answer_errors=webhook is None),
        store=store,
        sender=sender,
        board=board,
        waiting=WaitingLine(admit, parts.queue, board, texts),
        menus=menus,
        background=handler_parts.background,
        deliver=deliver,
        outbox=outbox,
        stop_delivery=stop_delivery,
        # started in this order, stopped in the reverse one
        resources=[part for part in (store, stores.delivery_log, stores.coordination) if part is not None],
        webhook=webhook,
        http=parts.http,
        queue_refresh_s=s.queue_refresh_s,
        link_warning=link_policy(s).warning(),
        stop_grace_s=s.shutdown_grace_s,
        health=health,
        catch_up=handler_parts.payments.catch_up if handler_parts.payments is not None else None,
    )


def _payments(
    s: Settings,
    stores: factories.UserStores,
    sender: Sender,
    replies: Replies,
    t: UiTexts,
    options: BotOptions,
    metrics: Metrics,
) -> Payments:
    """Telegram Stars (PAYMENTS=stars): the packs sold, the Bot API's refunds and record."""
    from adapters.telegram.payments import Payments, TelegramStars
    from domain.credits import parse_packs

    sell = SellCredits(stores.credits, parse_packs(s.stars_packs), TelegramStars(sender.bot), metrics=metrics)
    return Payments(
        sell=sell,
        credits=stores.credits,
        sender=sender,
        replies=replies,
        t=t,
        store=stores.store,
        options=options,
        support=s.payments_support,
        terms_url=s.payments_terms_url,
        catch_up_s=s.stars_catch_up_s,
    )


def _health(parts: TelegramParts, bot: Bot) -> TelegramHealth:
    """The Bot API's answers, seen by a middleware on the bot's session (every call), for the
    metrics and the readiness check."""
    from adapters.telegram.health import TelegramHealth

    s = parts.settings
    health = TelegramHealth(
        str(s.telegram_mode), on_error=parts.metrics.telegram_api_error, on_state=parts.metrics.telegram_up
    )
    bot.session.middleware(health.middleware())
    parts.http.readiness["telegram"] = health.check
    return health


def _sender(s: Settings, bot: Bot, stores: factories.UserStores) -> Sender:
    """The one way out to Telegram; with several instances, its limits are shared."""
    from adapters.telegram.sender import Sender

    store = stores.store

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
    return sender
