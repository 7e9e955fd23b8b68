"""Building the aiogram pieces: the ``Bot`` (pointed at Telegram or a self-hosted Bot API server),
and the ``Dispatcher`` with the feature routers. (The token is kept out of logs by
``config.logging.SecretRedactor``.)"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from adapters.telegram.background import Background
from adapters.telegram.bans import Bans
from adapters.telegram.commands import Menus
from adapters.telegram.guests import GuestAnswers
from adapters.telegram.handlers.inline import InlinePrompts
from adapters.telegram.i18n import UiTexts
from adapters.telegram.intake import PromptIntake
from adapters.telegram.job_maker import JobMaker
from adapters.telegram.options import BotOptions
from adapters.telegram.outside import OutsideMessages
from adapters.telegram.paste import SplitPaste
from adapters.telegram.payments import Payments
from adapters.telegram.replies import Replies
from adapters.telegram.reports import Reports
from adapters.telegram.sender import Sender
from adapters.telegram.status import StatusBoard
from adapters.telegram.texts import BotTexts
from domain.ports import JobQueue, Storage, UserStore
from domain.safety import SafetyTally
from domain.use_cases import SubmitPrompt
from domain.use_cases.admit import AdmitJobs, CancelJob
from domain.use_cases.balance import ShowBalance
from domain.use_cases.watch import WatchWorkers

log = logging.getLogger(__name__)


def build_bot(token: str, api_url: str = "https://api.telegram.org") -> Bot:
    """A Bot talking to Telegram, or to a self-hosted Bot API server at ``api_url``."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    return Bot(token=token, session=session, default=DefaultBotProperties(parse_mode=None))


@dataclass(frozen=True)
class HandlerParts:
    """Everything a handler may ask for, by name: the dispatcher's workflow data. Each handler
    declares only the parts it uses (aiogram passes a handler the keyword arguments it names)."""

    options: BotOptions
    t: UiTexts
    texts: BotTexts
    replies: Replies
    sender: Sender
    board: StatusBoard
    store: UserStore
    queue: JobQueue
    storage: Storage
    submit: SubmitPrompt
    jobs: JobMaker
    admit: AdmitJobs
    cancel_job: CancelJob
    intake: PromptIntake
    watch: WatchWorkers
    safety: SafetyTally
    reports: Reports
    bans: Bans
    menus: Menus
    background: Background
    split_paste: SplitPaste  # ("paste" is the part InOrder claimed for this update)
    inline_prompts: InlinePrompts
    outside: OutsideMessages  # inline (guest mode) and ephemeral messages
    guests: GuestAnswers
    clock: Callable[[], float]
    balance: ShowBalance
    payments: Payments | None = None  # PAYMENTS=stars


def build_dispatcher(parts: HandlerParts, *, answer_errors: bool = True) -> Dispatcher:
    """``answer_errors``: a failed update is answered with an honest message (polling); False
    (webhook): the failure goes back to Telegram, which sends the update again."""
    from adapters.telegram.handlers import errors, routers
    from adapters.telegram.middleware import InOrder, UserContext

    dispatcher = Dispatcher()
    for part in fields(parts):  # (not Dispatcher(**...): some names, ``storage``, are its own)
        dispatcher[part.name] = getattr(parts, part.name)
    InOrder(parts.split_paste).install(dispatcher)  # one chat's updates in the order they came
    if answer_errors:
        dispatcher.include_router(errors.router())
    context = UserContext(
        store=parts.store,
        options=parts.options,
        replies=parts.replies,
        bans=parts.bans,
        sender=parts.sender,
        paste=parts.split_paste,
        guests=parts.guests,
    )
    dispatcher.message.outer_middleware(context)
    dispatcher.callback_query.outer_middleware(context)
    dispatcher.inline_query.outer_middleware(context)
    dispatcher.guest_message.outer_middleware(context)
    dispatcher.include_routers(*routers())
    return dispatcher
