"""One chat's updates take turns: each is handled after the one that arrived before it, while
other chats' updates are handled at the same time.

aiogram handles every update on a task of its own (polling's ``handle_as_tasks``; in webhook mode
each request is one), so a user's messages sent within a few milliseconds are handled all at
once, and whichever handler reaches Telegram first answers first: a /queue sent after a prompt
was answered before the prompt's status, and listed no job. A turn is taken, synchronously, the
moment an update comes in (tasks start in the order aiogram created them, so turns follow the
order of arrival), and the handler waits until the turns before it are over.

A turn is over when its handler ends, or earlier when its handler hands it over
(``hand_over``): the sender does so when one of the handler's calls must wait a long time in
the chat's line (flood control, a long backlog). What ordering needs is then in place (that
call keeps its place in the chat's line, ahead of whatever the next update sends), and the
chat's next updates are handled meanwhile: button presses answered, prompts queued for the
workers, cancellations made before the worker starts on the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator

_current: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("chat_turn", default=None)


class Turn:
    """One update's turn in its chat."""

    __slots__ = ("_before", "_owner", "over")

    def __init__(self, before: asyncio.Future[None] | None) -> None:
        self._before = before
        self.over: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._owner: asyncio.Task[object] | None = None

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Wait until the updates of the chat that came before this one are handled (or handed
        over), then hold the turn for the block; it is over when the block ends."""
        try:
            if self._before is not None and not self._before.done():
                # shielded: this update cancelled must not end the turns before it
                await asyncio.shield(self._before)
            self._owner = asyncio.current_task()
            token = _current.set(self)
            try:
                yield
            finally:
                _current.reset(token)
        finally:
            self.hand_over()

    def hand_over(self) -> None:
        """The chat's next update may go ahead (once those before this one went ahead too)."""
        if self.over.done():
            return
        before = self._before
        if before is None or before.done():
            self._end()
        else:  # (this update was given up while it waited: the next still comes after the earlier)
            before.add_done_callback(self._end)

    def _end(self, _: object = None) -> None:
        if not self.over.done():
            self.over.set_result(None)


def held_turn() -> Turn | None:
    """The turn the current task is handling an update in, if it still holds it. (Tasks the
    handler started inherit the context, not the turn: only the handler's own task holds it.)"""
    turn = _current.get()
    if turn is None or turn.over.done() or turn._owner is not asyncio.current_task():
        return None
    return turn


class ChatTurns:
    """The line of turns of every chat with updates in hand (a chat leaves it when its last
    turn is over)."""

    def __init__(self) -> None:
        self._last: dict[int, Turn] = {}

    def take(self, chat_id: int) -> Turn:
        """The update's place in its chat's line: call it before awaiting anything."""
        last = self._last.get(chat_id)
        turn = Turn(last.over if last is not None else None)
        self._last[chat_id] = turn

        def leave(_: asyncio.Future[None]) -> None:
            if self._last.get(chat_id) is turn:
                del self._last[chat_id]

        turn.over.add_done_callback(leave)
        return turn

    def __len__(self) -> int:
        return len(self._last)
