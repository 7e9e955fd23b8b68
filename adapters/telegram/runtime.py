"""The Telegram front as one component the app starts and stops: the bot, its dispatcher (long
polling, or a webhook route on the app's HTTP endpoint), the user store, the one outbound sender,
and the consumer that delivers results and progress to chats.

Everything it needs beyond the ports is built here from ``settings``: the user store (SQLite by
default, PostgreSQL for several hosts, or memory), the durable delivery log next to it (so bot instances sharing the file never
send one result twice), the sender's limits and the per-user limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from typing import Any

from aiohttp import web

from adapters.telegram.announcer import TelegramAnnouncer
from adapters.telegram.bot import build_bot, build_dispatcher
from adapters.telegram.commands import set_menus
from adapters.telegram.front import Front, FrontConfig
from adapters.telegram.i18n import Translator
from adapters.telegram.links import LinkUse, link_use, link_warning, public_link_base
from adapters.telegram.notifier import TelegramNotifier
from adapters.telegram.sender import Sender
from adapters.telegram.status import StatusBoard
from domain.ports import DeliveryLog, JobQueue, Storage
from domain.use_cases import DeliverResults, PublishOutbox, SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob
from domain.use_cases.outcomes import RecordOutcomes
from domain.users import UserLimits, UserStore
from domain.waits import WaitEstimator

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class _StoppableEvents:
    """The queue as DeliverResults sees it: a wait for events ends as soon as the runtime stops
    (instead of at the poll timeout). Events taken but not handled are not acked: the queue owes
    them still."""

    def __init__(self, queue: JobQueue, stop: asyncio.Event) -> None:
        self._queue = queue
        self._stop = stop

    async def receive_events(self, max_events: int, timeout: float) -> list[Any]:
        if self._stop.is_set():
            return []
        receive = asyncio.ensure_future(self._queue.receive_events(max_events, timeout))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({receive, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not receive.done():
            receive.cancel()
        try:
            return await receive
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def _setting(settings: Any, name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def build_user_store(settings: Any) -> tuple[UserStore, DeliveryLog | None]:
    """The user store the settings ask for, and the durable delivery log that goes with it.
    The log's owner name is the instance's stable name (``WORKER_ID``, else the host name), so
    that this instance restarted takes over its own unconfirmed claims at once."""
    backend = _setting(settings, "user_store", "memory")
    backend = str(getattr(backend, "value", backend))
    owner = _setting(settings, "worker_id", "") or socket.gethostname()
    lease = _setting(settings, "delivery_lease_s", 15.0)
    if backend == "postgres":  # shared by bot instances on any number of hosts
        from adapters.postgres import PostgresDatabase, PostgresDeliveryLog, PostgresUserStore

        pg = PostgresDatabase(
            settings.database_url.get_secret_value(),
            password=settings.database_password.get_secret_value() or None,
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
            connect_timeout_s=settings.database_connect_timeout_s,
        )
        return PostgresUserStore(pg), PostgresDeliveryLog(pg, lease_s=lease, owner=owner)
    if backend == "sqlite":
        from adapters.sqlite.delivery_log import SqliteDeliveryLog
        from adapters.sqlite.user_store import SqliteUserStore, database

        db = database(settings.sqlite_path)
        return SqliteUserStore(db), SqliteDeliveryLog(db, lease_s=lease, owner=owner)
    from adapters.memory.user_store import MemoryUserStore

    return MemoryUserStore(), None


def build_coordination(settings: Any, store: UserStore) -> Any:
    """With PostgreSQL, the send budget and per-chat pacing shared by every bot instance."""
    db = getattr(store, "db", None)
    if type(store).__name__ != "PostgresUserStore" or db is None:
        return None
    from adapters.postgres.coordination import PostgresSendCoordination

    return PostgresSendCoordination(
        db, owner=_setting(settings, "worker_id", "") or socket.gethostname(),
        rate=_setting(settings, "send_rate_global", 30.0),
    )


class TelegramRuntime:
    def __init__(
        self,
        settings: Any,
        *,
        queue: JobQueue,
        storage: Storage,
        submit: SubmitPrompt,
        delivery_log: DeliveryLog,
        translator: Translator | None = None,
        http: Any = None,
        metrics: Any = None,
        tracer: Any = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.storage = storage
        self.submit = submit
        self.t = translator or Translator()
        self.http = http
        self._stop_delivery = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._accepting = False
        mode = _setting(settings, "telegram_mode", "polling")
        self.mode = str(getattr(mode, "value", mode))

        self.bot = build_bot(settings.telegram_bot_token.get_secret_value(), settings.telegram_api_url)
        self.store, self._durable_log = build_user_store(settings)
        self.delivery_log: DeliveryLog = self._durable_log or delivery_log
        if http is not None and hasattr(self.store, "is_ready"):  # a database server: ready while reachable
            http.readiness["database"] = self.store.is_ready
        self.coordination = build_coordination(settings, self.store)  # several instances: shared limits
        self.sender = Sender(
            self.bot,
            rate=_setting(settings, "send_rate_global", 30.0),
            rate_per_chat=_setting(settings, "send_rate_per_chat", 1.0),
            group_interval_s=_setting(settings, "send_group_interval_s", 3.0),
            max_attempts=_setting(settings, "send_max_attempts", 5),
            backoff_s=_setting(settings, "send_backoff_s", 0.5),
            on_blocked=self._blocked,
            shared=self.coordination,
        )
        if self.coordination is not None:
            self.coordination.on_share = self.sender.set_rate_limit
        self.board = StatusBoard(
            self.sender, _setting(settings, "status_edit_interval_s", 2.0),
            # live-status edits take at most a third of the outbound rate, whatever the load
            edits_per_s=float(_setting(settings, "send_rate_global", 30.0)) / 3,
        )
        config = FrontConfig(
            limits=UserLimits(
                max_in_flight=_setting(settings, "max_jobs_in_flight_per_user", 3),
                per_minute=_setting(settings, "user_rate_per_minute", 10),
                expiry_s=_setting(settings, "user_job_expiry_s", 3600.0),
            ),
            admins=frozenset(_setting(settings, "admin_ids", set())),
            allowed=frozenset(_setting(settings, "allowed_user_ids", set())),
            variations=_setting(settings, "variations", 3),
            history_size=_setting(settings, "history_size", 10),
            admin_chat_id=_setting(settings, "admin_chat_id", 0),
            split_join_s=_setting(settings, "split_join_s", 1.5),
            album_wait_s=_setting(settings, "album_wait_s", 30.0),
            links=self.link_mode(settings).value,
        )
        self.front = Front(
            submit=submit, queue=queue, storage=storage, store=self.store, sender=self.sender,
            t=self.t, board=self.board, config=config,
            estimator=WaitEstimator(
                max_batch=_setting(settings, "max_batch", 1),
                # a picture: its chat action, the photo and the status's removal
                send_s=3.0 / max(0.1, float(_setting(settings, "send_rate_global", 30.0))),
            ),
        )
        self.queue_refresh_s = float(_setting(settings, "queue_refresh_s", 5.0))
        announcer = TelegramAnnouncer(self.front)
        self.front.admit = AdmitJobs(submit, self.store, announcer, limits=config.limits, clock=self.front.clock)
        self.front.cancel_job = CancelJob(self.store, queue, announcer, clock=self.front.clock)
        self.notifier = TelegramNotifier(self.front)
        self.dispatcher = build_dispatcher(self.front, answer_errors=self.mode != "webhook")
        extra = {k: v for k, v in (("metrics", metrics), ("tracer", tracer)) if v is not None}
        lease = _setting(settings, "delivery_lease_s", 15.0)
        self.deliver = DeliverResults(
            _StoppableEvents(queue, self._stop_delivery),
            RecordOutcomes(self.notifier, self.store, clock=self.front.clock),
            self.delivery_log,
            renew_every_s=max(0.1, lease / 3),
            **extra,
        )
        self.outbox = PublishOutbox(
            queue, self.store, submit,
            expiry_s=config.limits.expiry_s, on_expired=self.front.never_queued,
        )
        self._webhook: Any = None
        if self.mode == "webhook":
            self._setup_webhook()

    @staticmethod
    def link_mode(settings: Any) -> LinkUse:
        """What picture links will be: buttons, text in captions, or none."""
        name, base = public_link_base(settings)
        if not base:
            return LinkUse.BUTTON if name == "S3_PUBLIC_ENDPOINT_URL" else LinkUse.NONE
        return link_use(base)

    async def _refresh_waiting(self) -> None:
        """Tell the jobs in line their place and wait as the queue moves."""
        while not self._stop_delivery.is_set():
            try:
                await asyncio.wait_for(self._stop_delivery.wait(), self.queue_refresh_s)
            except TimeoutError:
                pass
            else:
                return
            try:
                await self.front.refresh_waiting()
            except Exception as exc:  # a status that is not refreshed is harmless
                log.debug("refreshing the queue positions failed: %s", type(exc).__name__)

    # --- webhook ------------------------------------------------------------------------------------
    def _setup_webhook(self) -> None:
        from aiogram.webhook.aiohttp_server import SimpleRequestHandler

        s = self.settings
        secret = s.telegram_webhook_secret.get_secret_value()
        if not s.telegram_webhook_url:
            raise ValueError("TELEGRAM_WEBHOOK_URL must be set in webhook mode")
        if not _SECRET.match(secret):
            raise ValueError(
                "TELEGRAM_WEBHOOK_SECRET must be set in webhook mode (1-256 characters A-Z a-z 0-9 _ -)"
            )
        if self.http is None:
            raise ValueError("webhook mode needs the app's HTTP endpoint")
        # Handled within the request (not in the background): an update whose handling fails is
        # answered with an error, and Telegram sends it again instead of it being lost.
        self._webhook = SimpleRequestHandler(
            self.dispatcher, self.bot, secret_token=secret, handle_in_background=False
        )
        self.http.add_route("POST", s.telegram_webhook_path, self._on_webhook)

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        if not self._accepting:  # stopping: Telegram sends it again, to another instance
            return web.Response(status=503, text="not accepting updates")
        try:
            return await self._webhook.handle(request)
        except Exception as exc:  # e.g. the database away: Telegram sends the update again
            log.warning("update not handled (%s); Telegram will send it again", type(exc).__name__)
            return web.Response(status=503, text="update not handled; send it again")

    async def _blocked(self, chat_id: int) -> None:
        await self.store.mark_blocked(chat_id, time.time())

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.start()
        if self._durable_log is not None:
            await self._durable_log.start()  # type: ignore[attr-defined]
        if self.coordination is not None:
            await self.coordination.start()
        self._tasks.append(asyncio.create_task(self.deliver.run(self._stop_delivery), name="deliver"))
        self._tasks.append(asyncio.create_task(self.outbox.run(self._stop_delivery), name="outbox"))
        self._tasks.append(asyncio.create_task(set_menus(self.front), name="menus"))
        if self.queue_refresh_s > 0:
            self._tasks.append(asyncio.create_task(self._refresh_waiting(), name="refresh-waiting"))
        warning = link_warning(self.settings)
        if warning:
            log.warning("%s", warning)
        allowed = self.dispatcher.resolve_used_update_types()
        self._accepting = True
        if self.mode == "webhook":
            s = self.settings
            await self.sender.call(
                0,
                lambda: self.bot.set_webhook(
                    s.telegram_webhook_url,
                    secret_token=s.telegram_webhook_secret.get_secret_value(),
                    allowed_updates=allowed,
                    drop_pending_updates=False,
                ),
                paced=False,
            )
            log.info("Telegram webhook mode: updates arrive on %s", s.telegram_webhook_path)
            return
        with contextlib.suppress(Exception):  # a webhook left set would make getUpdates fail
            await self.sender.call(
                0, lambda: self.bot.delete_webhook(drop_pending_updates=False), paced=False, attempts=2
            )
        self._tasks.append(
            asyncio.create_task(
                self.dispatcher.start_polling(
                    self.bot, handle_signals=False, close_bot_session=False, allowed_updates=allowed
                ),
                name="polling",
            )
        )

    async def stop_intake(self) -> None:
        """Accept no more prompts; results keep being delivered."""
        self._accepting = False
        if self.mode != "webhook":
            with contextlib.suppress(RuntimeError):  # polling was not running
                await self.dispatcher.stop_polling()

    async def stop(self) -> None:
        self._accepting = False
        self._stop_delivery.set()
        if self._tasks:
            # Deliveries in hand get a few seconds; one still retrying then is cut short: it is
            # not acked, so the queue delivers it again after the restart.
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
            self._tasks.clear()
        for task in list(self.front.background):
            task.cancel()
        await self.board.stop()
        self.sender.close()
        if self.coordination is not None:
            await self.coordination.stop()
        if self._durable_log is not None:
            await self._durable_log.stop()  # type: ignore[attr-defined]
        await self.store.stop()
        await self.bot.session.close()
