"""Long pastes that Telegram clients split: a text over 4096 characters arrives as several messages
of up to 4096 characters, one right after the other. They are joined back before the prompt is
checked, so the user gets one answer ("too long", or one picture when the whole fits).

A message of at least ``min_part`` characters may be the first part of a split paste: it opens a
paste; what the same user sends in the same chat within ``window_s`` of the last part is added to
it as long as the previous part was a full one (a short part is the tail). The first part's
handler waits until no part came for ``window_s`` and gets the joined text; the later parts'
updates are taken by the paste and not handled on their own.

``claim`` must be called before the update's handling awaits anything (updates are handled as
tasks in arrival order, so the first part has opened the paste when the second is claimed), and
before the update waits for its chat's turn (``middleware.InOrder``): the first part's handler
holds the turn while it waits for the next part.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

SPLIT_AT = 4096


@dataclass
class Paste:
    parts: list[tuple[int, str]]
    last_at: float
    window_s: float
    done: bool = False

    @property
    def single(self) -> bool:
        return len(self.parts) == 1

    async def joined(self) -> str:
        """The whole text, once no further part came for the window."""
        # Not a poll: each sleep lasts until the window's end, which a later part moves on.
        while (wait := self.last_at + self.window_s - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        self.done = True
        return "".join(text for _, text in sorted(self.parts))


class SplitPaste:
    def __init__(self, window_s: float = 1.5, min_part: int = SPLIT_AT - 96) -> None:
        self.window_s = window_s
        self.min_part = min_part
        self._open: dict[tuple[int, int], Paste] = {}

    def claim(self, chat_id: int, user_id: int, message_id: int, text: str) -> Paste | None:
        """The paste this message starts (await its ``joined()``), a single-message paste for
        an ordinary message, or None when the message is a later part of an open paste."""
        key = (chat_id, user_id)
        now = time.monotonic()
        paste = self._open.get(key)
        if paste is not None and not paste.done and now - paste.last_at <= self.window_s:
            last = max(paste.parts)[1]
            if len(last) >= self.min_part:
                paste.parts.append((message_id, text))
                paste.last_at = now
                return None
        if self.window_s <= 0 or len(text) < self.min_part:
            return Paste([(message_id, text)], now, 0.0, done=True)
        paste = self._open[key] = Paste([(message_id, text)], now, self.window_s)
        return paste

    def close(self, chat_id: int, user_id: int, paste: Paste) -> None:
        if self._open.get((chat_id, user_id)) is paste:
            del self._open[(chat_id, user_id)]
