"""Whether the bot really receives updates, seen from the Bot API's own answers.

aiogram retries a failed ``getUpdates`` forever, 401 Unauthorized and 409 Conflict included, so
a bot whose token was revoked, or that a second instance pushed off the polling, keeps running
and looks alive. A request middleware on the bot's session sees every call's answer: the last
``getUpdates`` (or ``getMe``) outcome says whether polling works, and every refused call is
counted by method and error code. In webhook mode, the outcome of ``setWebhook`` and the
periodic ``getWebhookInfo`` say whether the webhook is set on our URL, and whether Telegram's
deliveries to it fail (exported, not a readiness failure: see ``webhook_deliveries``).

``problem()`` is the readiness check: None while updates flow, else a short reason (no token,
no URL: the reasons are safe to show on ``/readyz``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

log = logging.getLogger(__name__)

# The error classes aiogram maps the Bot API's answers to, and the code each stands for.
_CODES: tuple[tuple[type[Exception], str], ...] = (
    (TelegramEntityTooLarge, "413"),  # a TelegramNetworkError subclass: before it
    (TelegramNetworkError, "network"),
    (TelegramRetryAfter, "429"),
    (TelegramUnauthorizedError, "401"),
    (TelegramForbiddenError, "403"),
    (TelegramConflictError, "409"),
    (TelegramNotFound, "404"),
    (TelegramBadRequest, "400"),
    (TelegramServerError, "5xx"),
)

_REASONS = {
    "401": "the Bot API refuses the token (401 Unauthorized)",
    "409": "another instance is polling with this token (409 Conflict)",
    "network": "the Bot API is unreachable",
}


def error_code(error: BaseException) -> str:
    """The Bot API error code of an aiogram exception ("network" when no answer came)."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return "other" if isinstance(error, TelegramAPIError) else type(error).__name__


class TelegramHealth:
    """The Bot API as the bot last saw it. ``on_error`` counts refused calls (method, code) and
    ``on_state`` exports whether updates flow (both: the metrics)."""

    def __init__(
        self,
        mode: str,
        *,
        on_error: Callable[[str, str], None] | None = None,
        on_state: Callable[[str, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mode = mode  # polling or webhook
        self._on_error = on_error
        self._on_state = on_state
        self.clock = clock
        self.polling = False  # the runtime is inside start_polling
        self._poll_error: str | None = None  # the code of the last failed getUpdates/getMe, None: fine
        self._webhook_problem: str | None = "the webhook is not set yet"
        self._delivery_problem: str | None = None  # Telegram's last delivery error, while current
        self._unauthorized = False  # the last call refused the token; any call that works clears it
        self._report()

    # --- what the runtime tells --------------------------------------------------------------
    def polling_started(self) -> None:
        self.polling = True
        self._report()

    def polling_stopped(self, error: BaseException | None = None) -> None:
        self.polling = False
        if error is not None:
            self._poll_error = error_code(error)
        self._report()

    def webhook_state(self, problem: str | None) -> None:
        """None: Telegram delivers to our URL; else why it does not."""
        if problem != self._webhook_problem and problem is not None:
            log.warning("Telegram webhook not working: %s", problem)
        self._webhook_problem = problem
        self._report()

    def webhook_deliveries(self, problem: str | None) -> None:
        """Telegram's own account of its deliveries to us (getWebhookInfo's last error, while
        current). Exported and logged, but not a readiness failure: readiness routes the very
        requests Telegram delivers, so a pod taken out for failed deliveries would keep them
        failing (every replica sees the same error), and never come back."""
        if problem != self._delivery_problem and problem is not None:
            log.warning("Telegram cannot deliver updates to the webhook: %s", problem)
        self._delivery_problem = problem
        self._report()

    # --- the readiness check -----------------------------------------------------------------
    def problem(self) -> str | None:
        if self._unauthorized:
            return _REASONS["401"]
        if self.mode == "webhook":
            return self._webhook_problem
        if self._poll_error is not None:
            return _REASONS.get(self._poll_error, f"getUpdates fails ({self._poll_error})")
        if not self.polling:
            return "polling is not running"
        return None

    def check(self) -> bool | str:
        """For the HTTP endpoint: True, or the reason."""
        return self.problem() or True

    def _report(self) -> None:
        if self._on_state is not None:
            up = self.problem() is None and (self.mode != "webhook" or self._delivery_problem is None)
            self._on_state(self.mode, up)

    # --- the session middleware ---------------------------------------------------------------
    def middleware(self) -> BaseRequestMiddleware:
        return _Watch(self)

    def _answered(self, method: str, error: BaseException | None) -> None:
        code = None if error is None else error_code(error)
        if code is not None and self._on_error is not None:
            self._on_error(method, code)
        if code in (None, "401") and self._unauthorized != (code == "401"):
            self._unauthorized = code == "401"
            self._report()
        if method in ("getUpdates", "getMe") and self.mode == "polling":
            before = self._poll_error
            if method == "getUpdates" or code is not None:  # a getMe that works says nothing of polling
                self._poll_error = code
            if code != before:
                if code is None:
                    log.info("Telegram polling works again")
                else:
                    log.warning("Telegram %s refused: %s", method, _REASONS.get(code, code))
            self._report()


class _Watch(BaseRequestMiddleware):
    def __init__(self, health: TelegramHealth) -> None:
        self.health = health

    async def __call__(self, make_request: Any, bot: Bot, method: TelegramMethod[Any]) -> Response[Any]:
        name = type(method).__name__
        name = name[:1].lower() + name[1:]  # GetUpdates -> getUpdates, as the Bot API names it
        try:
            answer = await make_request(bot, method)
        except Exception as exc:
            self.health._answered(name, exc)
            raise
        self.health._answered(name, None)
        return answer
