"""The Telegram front as one component the app starts and stops: the bot, its dispatcher (long
polling, or a webhook route on the app's HTTP endpoint), the user store, the one outbound sender,
and the consumer that delivers results and progress to chats.

The composition root (``config/bootstrap.py``) builds every part from the settings and hands them
in ready; this module starts them, runs the background loops and stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from adapters.telegram.commands import set_menus
from domain.ports import JobQueue
from domain.use_cases import DeliverResults, PublishOutbox

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from adapters.http.server import HttpEndpoint
    from adapters.telegram.front import Front
    from adapters.telegram.sender import Sender
    from adapters.telegram.status import StatusBoard

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class StoppableEvents:
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


@dataclass(frozen=True)
class Webhook:
    """Webhook mode: Telegram posts updates to ``url``; they arrive on ``path`` of the app's HTTP
    endpoint with ``secret`` in X-Telegram-Bot-Api-Secret-Token."""

    url: str
    path: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("TELEGRAM_WEBHOOK_URL must be set in webhook mode")
        if not _SECRET.match(self.secret):
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be set in webhook mode (1-256 characters A-Z a-z 0-9 _ -)")


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class TelegramRuntime:
    """Built by the composition root (``config/bootstrap.py``) from ready parts; this class
    only starts them, runs the background loops, and stops them in order."""

    def __init__(
        self,
        *,
        bot: Bot,
        dispatcher: Dispatcher,
        front: Front,
        sender: Sender,
        board: StatusBoard,
        deliver: DeliverResults,
        outbox: PublishOutbox,
        stop_delivery: asyncio.Event,
        resources: Sequence[Startable],
        http: HttpEndpoint,
        webhook: Webhook | None = None,
        queue_refresh_s: float = 5.0,
        link_warning: str | None = None,
        stop_grace_s: float = STOP_GRACE_S,  # SHUTDOWN_GRACE_S: how long replies may drain on a stop
    ) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.front = front
        self.sender = sender
        self.board = board
        self.deliver = deliver
        self.outbox = outbox
        self._stop_delivery = stop_delivery  # DeliverResults' queue (StoppableEvents) waits on it too
        self.resources = list(resources)  # the user store, its delivery log and shared limits
        self.http = http
        self.webhook = webhook
        self.mode = "webhook" if webhook is not None else "polling"
        self.queue_refresh_s = queue_refresh_s
        self.link_warning = link_warning
        self.stop_grace_s = stop_grace_s
        self._tasks: list[asyncio.Task[Any]] = []
        self._accepting = False
        self._webhook: Any = None
        if webhook is not None:
            from aiogram.webhook.aiohttp_server import SimpleRequestHandler

            # Handled within the request (not in the background): an update whose handling
            # fails is answered with an error, and Telegram sends it again instead of losing it.
            self._webhook = SimpleRequestHandler(
                dispatcher, bot, secret_token=webhook.secret, handle_in_background=False
            )
            http.add_route("POST", webhook.path, self._on_webhook)

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
    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        if not self._accepting:  # stopping: Telegram sends it again, to another instance
            return web.Response(status=503, text="not accepting updates")
        try:
            return await self._webhook.handle(request)
        except Exception as exc:  # e.g. the database away: Telegram sends the update again
            log.warning("update not handled (%s); Telegram will send it again", type(exc).__name__)
            return web.Response(status=503, text="update not handled; send it again")

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        for part in self.resources:
            await part.start()
        self._tasks.append(asyncio.create_task(self.deliver.run(self._stop_delivery), name="deliver"))
        self._tasks.append(asyncio.create_task(self.outbox.run(self._stop_delivery), name="outbox"))
        self._tasks.append(asyncio.create_task(set_menus(self.front), name="menus"))
        if self.queue_refresh_s > 0:
            self._tasks.append(asyncio.create_task(self._refresh_waiting(), name="refresh-waiting"))
        if self.link_warning:
            log.warning("%s", self.link_warning)
        allowed = self.dispatcher.resolve_used_update_types()
        self._accepting = True
        webhook = self.webhook
        if webhook is not None:
            await self.sender.call(
                0,
                lambda: self.bot.set_webhook(
                    webhook.url,
                    secret_token=webhook.secret,
                    allowed_updates=allowed,
                    drop_pending_updates=False,
                ),
                paced=False,
            )
            log.info("Telegram webhook mode: updates arrive on %s", webhook.path)
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

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop; deliveries in hand get ``grace_s`` (default: ``stop_grace_s``) to finish."""
        self._accepting = False
        self._stop_delivery.set()
        if self._tasks:
            # Deliveries in hand get the grace period; one still retrying then is cut short: it
            # is not acked, so the queue delivers it again after the restart.
            grace = self.stop_grace_s if grace_s is None else grace_s
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
            self._tasks.clear()
        for task in list(self.front.background):
            task.cancel()
        await self.board.stop()
        self.sender.close()
        for part in reversed(self.resources):
            await part.stop()
        await self.bot.session.close()
