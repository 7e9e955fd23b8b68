"""The one way out to Telegram: every message, edit, photo and document the bot sends goes
through ``Sender``, which keeps to Telegram's limits and survives its hiccups.

- Overall: at most ``rate`` calls in any window of ``window_s`` (Telegram allows about 30
  messages a second; a sliding window, unlike a token bucket with a burst, never lets a restarted
  bot with a backlog of results go over it, not even for one second). Waiting calls are served by
  priority: replies to what a user just did first, then results (the oldest prompt first, see
  ``serving``), then live-status edits (which the status board coalesces anyway).
- Per chat: calls to one chat go one at a time, the next no sooner than ``1/rate_per_chat`` seconds
  after the previous one *finished* (so the server sees them at least that far apart); in groups
  (negative chat ids) no sooner than ``group_interval_s`` (Telegram allows 20 messages a minute).
- ``TelegramRetryAfter``: the chat waits ``retry_after`` seconds, then the call is tried again.
- Network errors, 5xx and undecodable answers: retried with exponential backoff, up to
  ``max_attempts`` tries (never sooner than the chat's interval).
- ``TelegramForbiddenError`` (the user blocked the bot, or left): recorded through ``on_blocked``
  and raised as ``domain.errors.RecipientGone``; never retried. From then on nothing more goes to
  that chat (every call raises ``RecipientGone`` without reaching Telegram) until ``reachable``
  says the user wrote again.
- Other errors (bad request, entity too large...) are raised at once.
- One chat's line is kept in order: a call waits behind the calls to that chat made before it
  (a deletion too, though it needs no pacing). A handler whose call must wait long in the line
  (``hold_turn_s``: flood control, a long backlog) hands over its update's turn
  (adapters/telegram/turns.py): the call keeps its place, and the chat's next updates are
  handled meanwhile.
- A message is deleted once: a second delete of it (another path that ends the same status)
  is not sent, nor is an edit of a deleted message.

Several bot instances (webhook mode) share the limits through ``shared`` (a ``SharedPacing``, e.g.
``adapters.postgres.coordination``): it sets this instance's share of the overall rate
(``set_rate_limit``) and holds a chat across instances around each paced call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InputFile, InputMediaDocument, InputMediaPhoto, Message, ReplyParameters
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
)

from adapters.telegram.rate_window import Priority, RateWindow
from adapters.telegram.turns import Turn, held_turn
from domain.errors import RecipientGone

if TYPE_CHECKING:
    from aiogram.types import MediaUnion

log = logging.getLogger(__name__)
T = TypeVar("T")
# When the user whose calls are being made asked (epoch seconds), set by ``Sender.serving``.
_waiting_since: contextvars.ContextVar[float] = contextvars.ContextVar("waiting_since", default=0.0)

# Tried again: flood control (after its wait) and what a later try may get through. Not
# TelegramEntityTooLarge, a TelegramNetworkError that no try will get through.
_RETRIED = (TelegramRetryAfter, TelegramNetworkError, TelegramServerError, ClientDecodeError)


def _reply(message_id: int) -> ReplyParameters:
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


class SharedPacing(Protocol):
    """Per-chat pacing shared with other bot instances."""

    async def acquire(self, chat_id: int) -> bool: ...

    async def release(self, chat_id: int, next_in_s: float) -> None: ...


class _Chat:
    __slots__ = ("lock", "next_at", "queued", "turns")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # the chat's line (asyncio's lock serves its waiters first come, first served)
        self.next_at = 0.0
        self.queued = 0  # calls in the line, the one being made included
        self.turns: set[Turn] = set()  # the updates' turns held by calls in the line

    def hand_over_turns(self) -> None:
        for turn in self.turns:
            turn.hand_over()


class Sender:
    def __init__(
        self,
        bot: Bot,
        *,
        rate: float = 30.0,
        window_s: float = 1.0,
        rate_per_chat: float = 1.0,
        group_interval_s: float = 3.0,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        on_blocked: Callable[[int], Awaitable[None]] | None = None,
        shared: SharedPacing | None = None,
        hold_turn_s: float = 10.0,
        remember_deleted: int = 10_000,
    ) -> None:
        self.bot = bot
        self.shared = shared
        self.bucket = RateWindow(max(1, round(rate * window_s)), window_s)
        self.chat_interval = 1.0 / rate_per_chat if rate_per_chat > 0 else 0.0
        self.group_interval = max(self.chat_interval, group_interval_s)
        self.unreachable: set[int] = set()  # chats that answered 403: nothing more goes there
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_blocked = on_blocked
        self._chats: dict[int, _Chat] = {}
        # A handler whose call would wait longer than this in its chat's line hands over its turn.
        self.hold_turn_s = hold_turn_s
        self._deleted: OrderedDict[tuple[int, int], None] = OrderedDict()  # (chat, message), newest last
        self._remember_deleted = remember_deleted
        self.sent = 0  # calls that went through, for /stats and tests
        self.retried = 0

    def close(self) -> None:
        self.bucket.close()

    @contextlib.contextmanager
    def serving(self, since: float) -> Iterator[None]:
        """The calls made in this block (and the tasks it starts) are for a user waiting since
        ``since`` (epoch seconds; 0: now): within a priority, the overall budget goes to whoever
        has waited longest. So results come out oldest first across the whole backlog, and one
        taken over from a bot that died, which waited out its lease, goes before newer ones."""
        token = _waiting_since.set(since)
        try:
            yield
        finally:
            _waiting_since.reset(token)

    def set_rate_limit(self, limit: int) -> None:
        """This instance's calls in any window (its share of the overall budget)."""
        self.bucket.set_limit(limit)

    def reachable(self, chat_id: int) -> None:
        """The user wrote again (so unblocked the bot): sending to the chat is allowed again."""
        self.unreachable.discard(chat_id)

    def is_reachable(self, chat_id: int) -> bool:
        return chat_id not in self.unreachable

    def interval(self, chat_id: int) -> float:
        return self.group_interval if chat_id < 0 else self.chat_interval

    # --- the core --------------------------------------------------------------------------------
    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if len(self._chats) > 10_000:  # forget idle chats
                now = time.monotonic()
                for key in [k for k, c in self._chats.items() if not c.queued and c.next_at < now]:
                    del self._chats[key]
            chat = self._chats[chat_id] = _Chat()
        return chat

    async def call(
        self,
        chat_id: int,
        make_call: Callable[[], Awaitable[T]],
        *,
        priority: Priority = Priority.INTERACTIVE,
        paced: bool = True,
        in_line: bool = False,
        attempts: int | None = None,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """Run one Bot API call for ``chat_id`` under the limits, retrying what can be retried.

        ``paced=False``: not a message (chat actions): skips the chat's line but still counts
        against the overall rate; with ``in_line`` (deletions) it waits its turn in the chat's
        line, unpaced. ``on_sent``: awaited the moment Telegram has answered the call, before any
        bookkeeping here (the delivery confirms its claim in it: the shorter the gap between
        Telegram's answer and that record, the less a killed process sends twice)."""
        attempts = attempts or self.max_attempts
        if chat_id in self.unreachable:
            raise RecipientGone(chat_id=chat_id)
        interval = self.interval(chat_id)
        chat = self._chat(chat_id)
        # In the chat's line, its place taken before anything is awaited (``_line``).
        guard = self._line(chat, interval) if paced or in_line else contextlib.nullcontext()
        async with guard:
            delay = self.backoff_s  # the next pause after a network or server error (doubles)
            pause = 0.0  # the pause the last failed try asked for
            retrying = AsyncRetrying(
                stop=stop_after_attempt(attempts),
                retry=retry_if_exception_type(_RETRIED) & retry_if_not_exception_type(TelegramEntityTooLarge),
                # A paced call waits for the chat's next turn (next_at, which holds the pause) at
                # the start of its next try; an unpaced one sleeps the pause here.
                wait=lambda _: 0.0 if paced else pause,
                before_sleep=self._count_retry,
                reraise=True,
            )
            async for one_try in retrying:
                with one_try:
                    attempt = one_try.retry_state.attempt_number
                    if paced:
                        wait = chat.next_at - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    if chat_id in self.unreachable:  # found out while this call waited in line
                        raise RecipientGone(chat_id=chat_id)
                    held = paced and self.shared is not None and await self.shared.acquire(chat_id)
                    pause = 0.0
                    try:
                        async with self.bucket.slot(priority, _waiting_since.get() or time.time()):
                            result = await make_call()
                        if on_sent is not None:
                            await on_sent()
                        self.sent += 1
                        return result
                    except asyncio.CancelledError:
                        # It may still reach Telegram a little later: keep a margin.
                        pause = interval + 1.0
                        raise
                    except TelegramRetryAfter as exc:
                        pause = float(exc.retry_after)
                        log.info("flood control on chat %s: waiting %.0fs", chat_id, pause)
                        raise
                    except TelegramForbiddenError as exc:
                        log.info("chat %s cannot be reached: %s", chat_id, exc.message)
                        if chat_id:
                            self.unreachable.add(chat_id)
                        if self.on_blocked is not None:
                            with contextlib.suppress(Exception):
                                await self.on_blocked(chat_id)
                        raise RecipientGone(chat_id=chat_id) from exc
                    except TelegramEntityTooLarge:
                        raise  # sending it again will not make it smaller
                    except _RETRIED as exc:  # network and server errors, undecodable answers
                        pause = delay
                        delay = min(delay * 2, self.max_backoff_s)
                        log.info(
                            "Bot API call for chat %s failed (%s, try %d/%d)",
                            chat_id,
                            type(exc).__name__,
                            attempt,
                            attempts,
                        )
                        raise
                    finally:
                        if paced:
                            chat.next_at = time.monotonic() + max(interval, pause)
                        if max(interval, pause) + (chat.queued - 1) * interval > self.hold_turn_s:
                            chat.hand_over_turns()  # flood control: the line's handlers wait long
                        if held and self.shared is not None:
                            await asyncio.shield(self.shared.release(chat_id, max(interval, pause)))
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def _line(self, chat: _Chat, interval: float) -> AsyncIterator[None]:
        """Wait in the chat's line (first come, first served). The place is taken before
        anything is awaited; an update's handler whose call would wait long in it hands over its
        turn (adapters/telegram/turns.py), and so do those in the line when a pause (flood
        control) makes their wait long."""
        turn = held_turn()
        if turn is not None:
            if max(0.0, chat.next_at - time.monotonic()) + chat.queued * interval > self.hold_turn_s:
                turn.hand_over()  # a long wait: the chat's next updates need not wait for it
            else:
                chat.turns.add(turn)
        chat.queued += 1
        try:
            async with chat.lock:
                yield
        finally:
            chat.queued -= 1
            if turn is not None:
                chat.turns.discard(turn)

    def _count_retry(self, _: RetryCallState) -> None:
        self.retried += 1

    # --- what the bot sends ------------------------------------------------------------------------
    async def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        reply_markup: Any = None,
        reply_to: int | None = None,
        priority: Priority = Priority.INTERACTIVE,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> Message:
        kwargs: dict[str, Any] = {"reply_markup": reply_markup}
        if reply_to is not None:
            kwargs["reply_parameters"] = _reply(reply_to)
        return await self.call(
            chat_id,
            lambda: self.bot.send_message(chat_id, text[:4096], **kwargs),
            priority=priority,
            on_sent=on_sent,
        )

    async def edit_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        reply_markup: Any = None,
        priority: Priority = Priority.STATUS,
        attempts: int | None = None,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Edit a message's text; False when the message is gone or already says that."""
        if (chat_id, message_id) in self._deleted:
            log.debug("edit of %s/%s skipped: the message was deleted", chat_id, message_id)
            return False
        try:
            await self.call(
                chat_id,
                lambda: self.bot.edit_message_text(
                    text=text[:4096], chat_id=chat_id, message_id=message_id, reply_markup=reply_markup
                ),
                priority=priority,
                attempts=attempts,
                on_sent=on_sent,
            )
            return True
        except TelegramBadRequest as exc:
            log.debug("edit of %s/%s skipped: %s", chat_id, message_id, exc.message)
            return False

    async def send_photo(
        self,
        chat_id: int,
        photo: InputFile,
        *,
        caption: str,
        reply_markup: Any = None,
        reply_to: int | None = None,
        priority: Priority = Priority.RESULT,
        has_spoiler: bool = False,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> Message:
        """``has_spoiler``: Telegram blurs the photo until it is tapped (a flagged picture)."""
        kwargs: dict[str, Any] = {}
        if reply_to is not None:
            kwargs["reply_parameters"] = _reply(reply_to)
        if has_spoiler:  # left out unless wanted, as clients do
            kwargs["has_spoiler"] = True
        return await self.call(
            chat_id,
            lambda: self.bot.send_photo(
                chat_id, photo, caption=caption[:1024] or None, reply_markup=reply_markup, **kwargs
            ),
            priority=priority,
            on_sent=on_sent,
        )

    async def send_album(
        self,
        chat_id: int,
        media: Sequence[InputMediaPhoto | InputMediaDocument],
        *,
        reply_to: int | None = None,
        priority: Priority = Priority.RESULT,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> list[Message]:
        """2-10 pictures as one album (no buttons: Telegram takes none on an album)."""
        kwargs: dict[str, Any] = {}
        if reply_to is not None:
            kwargs["reply_parameters"] = _reply(reply_to)
        items: list[MediaUnion] = [*media]
        return await self.call(
            chat_id,
            lambda: self.bot.send_media_group(chat_id, items, **kwargs),
            priority=priority,
            on_sent=on_sent,
        )

    async def send_document(
        self,
        chat_id: int,
        document: InputFile,
        *,
        caption: str = "",
        reply_markup: Any = None,
        reply_to: int | None = None,
        priority: Priority = Priority.RESULT,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> Message:
        kwargs: dict[str, Any] = {}
        if reply_to is not None:
            kwargs["reply_parameters"] = _reply(reply_to)
        return await self.call(
            chat_id,
            lambda: self.bot.send_document(
                chat_id,
                document,
                caption=caption[:1024] or None,
                reply_markup=reply_markup,
                disable_content_type_detection=True,
                **kwargs,
            ),
            priority=priority,
            on_sent=on_sent,
        )

    async def delete(self, chat_id: int, message_id: int) -> None:
        """Best effort: a message already gone is fine. Once per message: several paths may end
        one status (its result settled, a withdrawal, a delivery settled again), and Telegram
        refuses the second delete ("message to delete not found"). In the chat's line, after
        the calls to the chat made before it (an edit queued before never finds it gone)."""
        key = (chat_id, message_id)
        if key in self._deleted:
            return
        self._deleted[key] = None  # at once: a second delete while this one is on its way waits for nothing
        while len(self._deleted) > self._remember_deleted:
            self._deleted.popitem(last=False)
        try:
            await self.call(
                chat_id,
                lambda: self.bot.delete_message(chat_id, message_id),
                priority=Priority.STATUS,
                paced=False,
                in_line=True,
                attempts=2,
            )
        except (TelegramBadRequest, RecipientGone):
            pass  # gone already, too old to delete, or the user blocked the bot: no second try either
        except BaseException:
            self._deleted.pop(key, None)  # not known to be gone: a later delete may try again
            raise

    async def chat_action_once(self, chat_id: int, action: str) -> None:
        """A courtesy ("sending a photo..."), sent only from spare budget: it never waits for a
        slot and so never holds a message back. (Queued like a message, the repeated actions of
        a few hundred deliveries waiting for the budget would eat it: 200 waiting deliveries
        repeat 44 actions a second, more than the whole budget.)"""
        if chat_id in self.unreachable or not self.bucket.is_free():
            return
        with contextlib.suppress(Exception):
            await self.call(
                chat_id,
                lambda: self.bot.send_chat_action(chat_id, action),
                priority=Priority.STATUS,
                paced=False,
                attempts=1,
            )

    @contextlib.asynccontextmanager
    async def chat_action(self, chat_id: int, action: str, every_s: float = 4.5) -> AsyncIterator[None]:
        """Show ``action`` ("upload_photo"...) in the chat while the block runs (Telegram shows an
        action for 5 s or until the next message, so it is repeated)."""

        async def keep() -> None:
            while True:
                await asyncio.sleep(every_s)
                await self.chat_action_once(chat_id, action)

        await self.chat_action_once(chat_id, action)  # out before the upload starts
        task = asyncio.create_task(keep(), name=f"chat-action-{chat_id}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
