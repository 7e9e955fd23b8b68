"""The Telegram front as one component the app starts and stops: the bot, its dispatcher (long
polling, or a webhook route on the app's HTTP endpoint), the user store, the one outbound sender,
and the consumer that delivers results and progress to chats.

The composition root (``config/bootstrap.py``) builds every part from the settings and hands them
in ready; this module starts them, runs the background loops and stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from adapters.telegram.commands import set_menus
from adapters.telegram.health import error_code
from domain.ports import JobQueue
from domain.use_cases import DeliverResults, PublishOutbox

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from adapters.http.server import HttpEndpoint
    from adapters.telegram.front import Front
    from adapters.telegram.health import TelegramHealth
    from adapters.telegram.sender import Sender
    from adapters.telegram.status import StatusBoard

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0
WEBHOOK_CHECK_S = 60.0  # how often getWebhookInfo is asked whether Telegram reaches us
WEBHOOK_ERROR_WINDOW_S = 600.0  # a delivery error older than this, with none since, is over
# The loops that must run while the bot runs: one that ended makes /healthz fail.
VITAL_TASKS = frozenset({"deliver", "outbox", "polling", "refresh-waiting", "webhook-watch"})
POLL_RESTART_FIRST_S = 1.0  # the first pause before polling starts again; it doubles up to the maximum
POLL_RESTART_MAX_S = 60.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule; the settings ask for 32 at least


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
        if not _SECRET.fullmatch(self.secret):
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
        health: TelegramHealth | None = None,
        webhook_check_s: float = WEBHOOK_CHECK_S,
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
        self.health = health  # the Bot API's answers, seen by a middleware on the bot's session
        self.webhook_check_s = webhook_check_s
        self._stopping = False
        self._delivered_at = 0.0  # wall clock of the last update Telegram posted to us, handled
        self._tasks: list[asyncio.Task[Any]] = []
        self._accepting = False
        self._polling_stop = asyncio.Event()  # set once intake stops: polling is not started again
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
    def _authentic(self, request: web.Request) -> bool:
        """The secret header matches, compared in constant time as bytes: ``hmac.compare_digest``
        on ``str`` raises on anything but ASCII, which aiogram's own check lets through (a 503
        and a warning per forged request instead of a 401)."""
        assert self.webhook is not None
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogatepass")
        return hmac.compare_digest(given, self.webhook.secret.encode())

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        if not self._authentic(request):  # missing, wrong or not even ASCII: all the same to us
            return web.Response(status=401, text="Unauthorized")
        if not self._accepting:  # stopping: Telegram sends it again, to another instance
            return web.Response(status=503, text="not accepting updates")
        try:
            answer = await self._webhook.handle(request)
            self._delivered_at = time.time()
            return answer
        except Exception as exc:  # e.g. the database away: Telegram sends the update again
            log.warning("update not handled (%s); Telegram will send it again", type(exc).__name__)
            return web.Response(status=503, text="update not handled; send it again")

    # --- polling ------------------------------------------------------------------------------------
    async def _poll(self, allowed: list[str]) -> None:
        """Long polling until intake stops, started again after any failure.

        aiogram retries a failed ``getUpdates`` by itself, but ``start_polling`` first asks for
        ``getMe`` and returns for good when that fails: a Bot API unreachable at start (or any
        other error that ends polling) would leave a bot that never reads an update again. Each
        restart waits 1 s, doubling up to 60 s, cut short when intake stops; the log line names
        the error's type only (the token is part of every request URL)."""

        def restarting(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "Telegram polling stopped (%s); starting it again in %.0f s",
                type(error).__name__,
                state.upcoming_sleep,
            )

        async def pause(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._polling_stop.wait(), seconds)

        tries = AsyncRetrying(
            wait=wait_exponential(multiplier=POLL_RESTART_FIRST_S, max=POLL_RESTART_MAX_S),
            retry=retry_if_exception_type(Exception),
            before_sleep=restarting,
            sleep=pause,
            reraise=True,
        )
        async for attempt in tries:
            if self._polling_stop.is_set():  # before every start, the first one too
                return
            with attempt:
                if self.health is not None:
                    self.health.polling_started()
                try:
                    await self.dispatcher.start_polling(
                        self.bot, handle_signals=False, close_bot_session=False, allowed_updates=allowed
                    )
                except Exception as exc:
                    if self.health is not None:
                        self.health.polling_stopped(exc)
                    raise
                if self.health is not None:
                    self.health.polling_stopped()
                if not self._polling_stop.is_set():  # it returned without being told to
                    raise RuntimeError("polling ended by itself")

    def _spawn(self, coroutine: Any, name: str) -> None:
        """A background task whose failure is logged as it happens, with its traceback (secrets
        are scrubbed by the logging setup), instead of surfacing as "Task exception was never
        retrieved" at exit, or never."""
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(_report_failure)
        self._tasks.append(task)

    def alive(self) -> bool | str:
        """The liveness check: True while every loop that should run runs, else which one ended."""
        if self._stopping:
            return True
        dead = [t.get_name() for t in self._tasks if t.done() and t.get_name() in VITAL_TASKS]
        return f"Telegram {', '.join(dead)} loop ended" if dead else True

    # --- webhook state -------------------------------------------------------------------------------
    async def _set_webhook(self, allowed: list[str]) -> bool:
        webhook = self.webhook
        assert webhook is not None
        try:
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
        except Exception as exc:
            self._webhook_state(f"setWebhook failed ({error_code(exc)})")
            return False
        self._webhook_state(None)
        return True

    def _webhook_state(self, problem: str | None) -> None:
        if self.health is not None:
            self.health.webhook_state(problem)
        elif problem is not None:
            log.warning("Telegram webhook not working: %s", problem)

    async def _watch_webhook(self, allowed: list[str]) -> None:
        """Ask Telegram every ``webhook_check_s`` whether it delivers to us: a webhook that
        another process replaced or deleted is set again; a current delivery error is exported."""
        webhook = self.webhook
        assert webhook is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_delivery.wait(), self.webhook_check_s)
                return
            try:
                info = await self.bot.get_webhook_info()
            except Exception as exc:  # counted by the session's middleware; the state stands
                log.debug("getWebhookInfo failed (%s)", error_code(exc))
                continue
            if info.url != webhook.url:
                self._webhook_state("the webhook points elsewhere or is not set")
                await self._set_webhook(allowed)
                continue
            # Telegram keeps the last error for good: it is current when no update reached us
            # since, and Telegram, retrying, keeps renewing it (ten minutes at most apart).
            last = info.last_error_date.timestamp() if info.last_error_date is not None else None
            current = last is not None and last >= self._delivered_at and time.time() - last < WEBHOOK_ERROR_WINDOW_S
            self._webhook_state(None)
            problem = (info.last_error_message or "delivery failed")[:120] if current else None
            if self.health is not None:
                self.health.webhook_deliveries(problem)
            elif problem is not None:
                log.warning("Telegram cannot deliver updates to the webhook: %s", problem)

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        for part in self.resources:
            await part.start()
        self._polling_stop.clear()
        self._spawn(self.deliver.run(self._stop_delivery), "deliver")
        self._spawn(self.outbox.run(self._stop_delivery), "outbox")
        self._spawn(set_menus(self.front), "menus")
        if self.queue_refresh_s > 0:
            self._spawn(self._refresh_waiting(), "refresh-waiting")
        if self.link_warning:
            log.warning("%s", self.link_warning)
        allowed = self.dispatcher.resolve_used_update_types()
        self._accepting = True
        self._stopping = False
        webhook = self.webhook
        if webhook is not None:
            # A webhook that cannot be set is not fatal: readiness says so, and the watch
            # sets it again on its next look.
            await self._set_webhook(allowed)
            if self.webhook_check_s > 0:
                self._spawn(self._watch_webhook(allowed), "webhook-watch")
            log.info("Telegram webhook mode: updates arrive on %s", webhook.path)
            return
        with contextlib.suppress(Exception):  # a webhook left set would make getUpdates fail
            await self.sender.call(
                0, lambda: self.bot.delete_webhook(drop_pending_updates=False), paced=False, attempts=2
            )
        self._spawn(self._poll(allowed), "polling")

    async def stop_intake(self) -> None:
        """Accept no more prompts; results keep being delivered."""
        self._accepting = False
        self._stopping = True  # the loops end on purpose from here on: not a liveness failure
        self._polling_stop.set()  # no restart from here on; a pause between restarts ends now
        if self.mode != "webhook":
            with contextlib.suppress(RuntimeError):  # polling was not running (or between restarts)
                await self.dispatcher.stop_polling()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop; deliveries in hand get ``grace_s`` (default: ``stop_grace_s``) to finish."""
        self._stopping = True
        self._accepting = False
        self._polling_stop.set()
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


def _report_failure(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("Telegram background task %r failed (%s)", task.get_name(), type(error).__name__, exc_info=error)
