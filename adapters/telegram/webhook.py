"""Webhook mode: Telegram posts updates to our URL, checked by their secret header and handled
within the request (an update whose handling fails is answered with an error, and Telegram sends
it again instead of losing it); the webhook is set at start and watched (``getWebhookInfo``):
one that another process replaced or deleted is set again, a delivery error is exported."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.telegram.health import error_code

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from adapters.http.server import HttpEndpoint
    from adapters.telegram.health import TelegramHealth
    from adapters.telegram.sender import Sender

log = logging.getLogger(__name__)

WEBHOOK_ERROR_WINDOW_S = 600.0  # a delivery error older than this, with none since, is over
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule; the settings ask for 32 at least


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


class WebhookIntake:
    def __init__(
        self,
        webhook: Webhook,
        *,
        dispatcher: Dispatcher,
        bot: Bot,
        sender: Sender,
        http: HttpEndpoint,
        health: TelegramHealth | None,
    ) -> None:
        from aiogram.webhook.aiohttp_server import SimpleRequestHandler

        self.webhook = webhook
        self.bot = bot
        self.sender = sender
        self.health = health
        self.accepting = False  # off while stopping: Telegram sends the update to another instance
        self.delivered_at = 0.0  # wall clock of the last update Telegram posted to us, handled
        self._handler = SimpleRequestHandler(dispatcher, bot, secret_token=webhook.secret, handle_in_background=False)
        http.add_route("POST", webhook.path, self._on_webhook)

    def _authentic(self, request: web.Request) -> bool:
        """The secret header matches, compared in constant time as bytes: ``hmac.compare_digest``
        on ``str`` raises on anything but ASCII, which aiogram's own check lets through (a 503
        and a warning per forged request instead of a 401)."""
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogatepass")
        return hmac.compare_digest(given, self.webhook.secret.encode())

    async def _on_webhook(self, request: web.Request) -> web.StreamResponse:
        if not self._authentic(request):  # missing, wrong or not even ASCII: all the same to us
            return web.Response(status=401, text="Unauthorized")
        if not self.accepting:  # stopping: Telegram sends it again, to another instance
            return web.Response(status=503, text="not accepting updates")
        try:
            answer = await self._handler.handle(request)
            self.delivered_at = time.time()
            return answer
        except Exception as exc:  # e.g. the database away: Telegram sends the update again
            log.warning("update not handled (%s); Telegram will send it again", type(exc).__name__)
            return web.Response(status=503, text="update not handled; send it again")

    async def set(self, allowed: list[str]) -> bool:
        """``setWebhook`` on our URL; False (and readiness says why) when it failed."""
        webhook = self.webhook
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
            self._state(f"setWebhook failed ({error_code(exc)})")
            return False
        self._state(None)
        return True

    def _state(self, problem: str | None) -> None:
        if self.health is not None:
            self.health.webhook_state(problem)
        elif problem is not None:
            log.warning("Telegram webhook not working: %s", problem)

    async def watch(self, allowed: list[str], stop: asyncio.Event, check_s: float) -> None:
        """Ask Telegram every ``check_s`` whether it delivers to us: a webhook that
        another process replaced or deleted is set again; a current delivery error is exported."""
        webhook = self.webhook
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), check_s)
                return
            try:
                info = await self.bot.get_webhook_info()
            except Exception as exc:  # counted by the session's middleware; the state stands
                log.debug("getWebhookInfo failed (%s)", error_code(exc))
                continue
            if info.url != webhook.url:
                self._state("the webhook points elsewhere or is not set")
                await self.set(allowed)
                continue
            # Telegram keeps the last error for good: it is current when no update reached us
            # since, and Telegram, retrying, keeps renewing it (ten minutes at most apart).
            last = info.last_error_date.timestamp() if info.last_error_date is not None else None
            current = last is not None and last >= self.delivered_at and time.time() - last < WEBHOOK_ERROR_WINDOW_S
            self._state(None)
            problem = (info.last_error_message or "delivery failed")[:120] if current else None
            if self.health is not None:
                self.health.webhook_deliveries(problem)
            elif problem is not None:
                log.warning("Telegram cannot deliver updates to the webhook: %s", problem)
