"""The Telegram front (aiogram 3): commands and prompts in, pictures and live status out."""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from dataclasses import dataclass

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    User,
)

from adapters.telegram.i18n import Translator
from domain.errors import InvalidRequest, QueueUnavailable, RecipientGone
from domain.models import JobStatus, Locale, Progress, Result
from domain.ports import JobQueue, Storage
from domain.services import SubmitPrompt

log = logging.getLogger(__name__)


def build_bot(token: str, api_url: str = "https://api.telegram.org") -> Bot:
    """A Bot talking to Telegram, or to a self-hosted Bot API server at ``api_url``."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    return Bot(token=token, session=session, default=DefaultBotProperties(parse_mode=None))


def user_locale(user: User | None) -> Locale:
    return Locale.from_language_code(user.language_code if user else None)


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


@dataclass
class BotFront:
    """Handlers of the incoming side: validate, queue, answer at once."""

    submit: SubmitPrompt
    queue: JobQueue
    t: Translator

    def router(self) -> Router:
        router = Router(name="prompts")
        router.message.register(self.on_start, CommandStart())
        router.message.register(self.on_help, Command("help"))
        router.message.register(self.on_txt2img, Command("txt2img"))
        router.message.register(self.on_text, F.text & ~F.text.startswith("/"))
        router.message.register(self.on_other)
        return router

    async def on_start(self, message: Message) -> None:
        locale = user_locale(message.from_user)
        name = message.from_user.first_name if message.from_user else ""
        await message.answer(self.t(locale, "start", name=name))

    async def on_help(self, message: Message) -> None:
        locale = user_locale(message.from_user)
        await message.answer(self.t(locale, "help", limit=self.submit.limits.max_prompt_chars))

    async def on_txt2img(self, message: Message, command: CommandObject) -> None:
        await self.accept(message, command.args or "")

    async def on_text(self, message: Message) -> None:
        await self.accept(message, message.text or "")

    async def on_other(self, message: Message) -> None:
        await message.answer(self.t(user_locale(message.from_user), "error-not_text"))

    async def accept(self, message: Message, text: str) -> None:
        locale = user_locale(message.from_user)
        user_id = message.from_user.id if message.from_user else message.chat.id
        try:
            job = self.submit.prepare(
                user_id=user_id, chat_id=message.chat.id, prompt=text, locale=locale
            )
        except InvalidRequest as exc:
            await message.answer(self.t(locale, f"error-{exc.code}", **exc.params))
            return
        try:
            position = await self.queue.backlog() + 1
        except Exception:
            position = 1
        status = await message.answer(self.t(locale, "queued", position=position))
        try:
            await self.submit.publish(job.model_copy(update={"status_message_id": status.message_id}))
        except QueueUnavailable as exc:
            await status.edit_text(self.t(locale, f"error-{exc.code}"))


class TelegramNotifier:
    """The outgoing side: live status edits and the finished picture."""

    def __init__(self, bot: Bot, storage: Storage, t: Translator, attempts: int = 5) -> None:
        self.bot = bot
        self.storage = storage
        self.t = t
        self.attempts = attempts

    async def _call(self, make_call):  # type: ignore[no-untyped-def]
        """Run a Bot API call, waiting out flood control and retrying transient failures."""
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_call()
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
            except TelegramForbiddenError as exc:
                raise RecipientGone() from exc
            except (TelegramNetworkError, TelegramServerError):
                if attempt == self.attempts:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        return await make_call()

    async def progress(self, event: Progress) -> None:
        if event.status_message_id is None:
            return
        if event.stage == "generating" and event.total_steps:
            text = self.t(
                event.locale, "progress-generating",
                percent=int(100 * event.step / event.total_steps),
            )
        else:
            text = self.t(event.locale, f"progress-{event.stage}")
        try:
            await self.bot.edit_message_text(
                text=text, chat_id=event.chat_id, message_id=event.status_message_id
            )
        except TelegramBadRequest:
            pass  # same text or message gone: nothing to do

    async def deliver(self, result: Result) -> None:
        if result.status == JobStatus.FAILED or not result.image_key:
            reason = self.t(result.locale, f"reason-{result.error_code or 'generation_failed'}")
            await self._call(
                lambda: self.bot.send_message(
                    result.chat_id, self.t(result.locale, "failed", reason=reason)
                )
            )
            return
        png = await self.storage.get(result.image_key)
        caption = self.t(
            result.locale,
            "result-caption",
            prompt=result.prompt[:700],
            seed=str(result.seed),
            width=result.width,
            height=result.height,
            profile=result.profile or "",
            seconds=f"{result.timings.total_s:.1f}",
        )
        markup = None
        if result.image_url and result.image_url.startswith(("http://", "https://")):
            markup = InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(
                    text=self.t(result.locale, "button-link"), url=result.image_url
                )]]
            )
        photo = BufferedInputFile(png, filename=f"{result.job_id}.png")
        await self._call(
            lambda: self.bot.send_photo(
                result.chat_id, photo, caption=caption[:1024], reply_markup=markup
            )
        )
        if result.status_message_id:
            try:
                await self.bot.delete_message(result.chat_id, result.status_message_id)
            except Exception:
                pass


def build_dispatcher(front: BotFront) -> Dispatcher:
    dispatcher = Dispatcher()
    dispatcher.include_router(front.router())
    return dispatcher
