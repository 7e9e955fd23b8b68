"""Building the aiogram pieces: the ``Bot`` (pointed at Telegram or a self-hosted Bot API server),
the ``Dispatcher`` with the feature routers, and the log filter that keeps the token out of logs."""

from __future__ import annotations

import logging
import re
import traceback
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import User

from domain.models import Locale

if TYPE_CHECKING:
    from adapters.telegram.front import Front

log = logging.getLogger(__name__)


def build_bot(token: str, api_url: str = "https://api.telegram.org") -> Bot:
    """A Bot talking to Telegram, or to a self-hosted Bot API server at ``api_url``."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    return Bot(token=token, session=session, default=DefaultBotProperties(parse_mode=None))


def user_locale(user: User | None) -> Locale:
    return Locale.from_language_code(user.language_code if user else None)


def build_dispatcher(front: "Front") -> Dispatcher:
    from adapters.telegram.handlers import routers
    from adapters.telegram.middleware import UserContext

    dispatcher = Dispatcher()
    dispatcher["front"] = front
    context = UserContext(front)
    dispatcher.message.outer_middleware(context)
    dispatcher.callback_query.outer_middleware(context)
    dispatcher.include_routers(*routers())
    return dispatcher


class TokenRedactor(logging.Filter):
    """Scrubs the bot token from every log record (aiogram's URLs contain it)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.pattern = re.compile(re.escape(token)) if token else None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.pattern is None:
            return True
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            record.exc_info = None
            record.exc_text = None
        record.msg = self.pattern.sub("<bot-token>", message)
        record.args = ()
        return True
