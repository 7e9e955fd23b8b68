"""Building the aiogram pieces: the ``Bot`` (pointed at Telegram or a self-hosted Bot API server),
and the ``Dispatcher`` with the feature routers. (The token is kept out of logs by
``config.logging.SecretRedactor``.)"""

from __future__ import annotations

import logging
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


def build_dispatcher(front: Front, *, answer_errors: bool = True) -> Dispatcher:
    """``answer_errors``: a failed update is answered with an honest message (polling); False
    (webhook): the failure goes back to Telegram, which sends the update again."""
    from adapters.telegram.handlers import errors, routers
    from adapters.telegram.middleware import InOrder, UserContext

    dispatcher = Dispatcher()
    InOrder(front).install(dispatcher)  # one chat's updates in the order they came
    if answer_errors:
        dispatcher.include_router(errors.router())
    dispatcher["front"] = front
    context = UserContext(front)
    dispatcher.message.outer_middleware(context)
    dispatcher.callback_query.outer_middleware(context)
    dispatcher.inline_query.outer_middleware(context)
    dispatcher.include_routers(*routers())
    return dispatcher
