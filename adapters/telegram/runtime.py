"""The Telegram front as one component the app starts and stops: the bot, its dispatcher (long
polling), and the consumer that delivers results and progress to chats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from adapters.telegram.bot import BotFront, TelegramNotifier, build_bot, build_dispatcher
from adapters.telegram.i18n import Translator
from domain.ports import DeliveryLog, JobQueue, Storage
from domain.services import DeliverResults, SubmitPrompt

log = logging.getLogger(__name__)


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
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.storage = storage
        self.submit = submit
        self.delivery_log = delivery_log
        self.t = translator or Translator()
        self.http = http
        self._stop_delivery = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.bot = build_bot(settings.telegram_bot_token.get_secret_value(), settings.telegram_api_url)
        self.notifier = TelegramNotifier(self.bot, storage, self.t)
        self.dispatcher = build_dispatcher(BotFront(submit, queue, self.t))
        self.deliver = DeliverResults(queue, self.notifier, delivery_log)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.deliver.run(self._stop_delivery), name="deliver"))
        self._tasks.append(
            asyncio.create_task(
                self.dispatcher.start_polling(self.bot, handle_signals=False, close_bot_session=False),
                name="polling",
            )
        )

    async def stop_intake(self) -> None:
        """Accept no more prompts; results keep being delivered."""
        with contextlib.suppress(RuntimeError):  # polling was not running
            await self.dispatcher.stop_polling()

    async def stop(self) -> None:
        self._stop_delivery.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
        await self.bot.session.close()
