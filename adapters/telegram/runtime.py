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
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from adapters.telegram.webhook import Webhook, WebhookIntake
from domain.ports import JobQueue, UserStore
from domain.use_cases import DeliverResults, PublishOutbox

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from adapters.http.server import HttpEndpoint
    from adapters.telegram.background import Background
    from adapters.telegram.commands import Menus
    from adapters.telegram.health import TelegramHealth
    from adapters.telegram.sender import Sender
    from adapters.telegram.status import StatusBoard
    from adapters.telegram.waiting import WaitingLine

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0
WEBHOOK_CHECK_S = 60.0  # how often getWebhookInfo is asked whether Telegram reaches us
# The loops that must run while the bot runs: one that ended makes /healthz fail.
VITAL_TASKS = frozenset({"deliver", "outbox", "polling", "refresh-waiting", "webhook-watch"})
POLL_RESTART_FIRST_S = 1.0  # the first pause before polling starts again; it doubles up to the maximum
POLL_RESTART_MAX_S = 60.0


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
        store: UserStore,
        sender: Sender,
        board: StatusBoard,
        waiting: WaitingLine,
        menus: Menus,
        background: Background,
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
        catch_up: Callable[[asyncio.Event], Awaitable[None]] | None = None,  # Stars whose message was lost
    ) -> None:
        self.catch_up = catch_up
        self.bot = bot
        self.dispatcher = dispatcher
        self.store = store  # the user store (also among ``resources``)
        self.sender = sender
        self.board = board
        self.waiting = waiting
        self.menus = menus
        self.background = background  # handlers' own tasks, cancelled on stop
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
        self._tasks: list[asyncio.Task[Any]] = []
        self._polling_stop = asyncio.Event()  # set once intake stops: polling is not started again
        self._intake: WebhookIntake | None = None
        if webhook is not None:
            self._intake = WebhookIntake(
                webhook, dispatcher=dispatcher, bot=bot, sender=sender, http=http, health=health
            )

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
                await self.waiting.refresh()
            except Exception as exc:  # a status that is not refreshed is harmless
                log.debug("refreshing the queue positions failed: %s", type(exc).__name__)

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

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        for part in self.resources:
            await part.start()
        self._polling_stop.clear()
        self._spawn(self.deliver.run(self._stop_delivery), "deliver")
        self._spawn(self.outbox.run(self._stop_delivery), "outbox")
        if self.catch_up is not None:
            self._spawn(self.catch_up(self._stop_delivery), "payments-catch-up")
        self._spawn(self.menus.set_everyones(), "menus")
        if self.queue_refresh_s > 0:
            self._spawn(self._refresh_waiting(), "refresh-waiting")
        if self.link_warning:
            log.warning("%s", self.link_warning)
        allowed = self.dispatcher.resolve_used_update_types()
        self._stopping = False
        intake = self._intake
        if intake is not None:
            intake.accepting = True
            # A webhook that cannot be set is not fatal: readiness says so, and the watch
            # sets it again on its next look.
            await intake.set(allowed)
            if self.webhook_check_s > 0:
                self._spawn(intake.watch(allowed, self._stop_delivery, self.webhook_check_s), "webhook-watch")
            log.info("Telegram webhook mode: updates arrive on %s", intake.webhook.path)
            return
        with contextlib.suppress(Exception):  # a webhook left set would make getUpdates fail
            await self.sender.call(
                0, lambda: self.bot.delete_webhook(drop_pending_updates=False), paced=False, attempts=2
            )
        self._spawn(self._poll(allowed), "polling")

    async def stop_intake(self) -> None:
        """Accept no more prompts; results keep being delivered."""
        if self._intake is not None:
            self._intake.accepting = False
        self._stopping = True  # the loops end on purpose from here on: not a liveness failure
        self._polling_stop.set()  # no restart from here on; a pause between restarts ends now
        if self.mode != "webhook":
            with contextlib.suppress(RuntimeError):  # polling was not running (or between restarts)
                await self.dispatcher.stop_polling()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop; deliveries in hand get ``grace_s`` (default: ``stop_grace_s``) to finish."""
        self._stopping = True
        if self._intake is not None:
            self._intake.accepting = False
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
        self.background.cancel()
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
