"""The text of the "copy prompt" button (a ``copy_text`` button, Bot API 7.11): the picture's
prompt with its parameters, seed included, written as the bot reads them back
(``domain.params.parse_prompt``), so that a user can paste it, change a word and send it again.

Telegram takes 1-256 characters (``CopyTextButton.text``). What is cut, and how: a parameter is
never cut. ``--seed``, ``--ar`` and ``--q`` always stay (a few characters each, and they are what
makes the picture the same); ``--no <negative>`` stays whole when it fits beside at least a few
words of the prompt, and is left out whole otherwise; last the prompt itself is cut at a word
boundary (mid-word only when a single word is longer than the room), with no "…" added, since
anything added would be read back as part of the prompt."""

from __future__ import annotations

import math

from domain.models import Quality

COPY_TEXT_LIMIT = 256
MIN_PROMPT = 40  # characters of the prompt kept before the negative prompt is given up


def aspect_of(width: int, height: int) -> str:
    """``--ar`` for a size: the reduced ratio (1024x576 -> 16:9)."""
    if width <= 0 or height <= 0:
        return ""
    d = math.gcd(width, height)
    return f"{width // d}:{height // d}"


def _cut(text: str, room: int) -> str:
    """``text`` in at most ``room`` characters, at a word boundary where there is one."""
    text = " ".join(text.split())
    if len(text) <= room:
        return text
    head = text[: room + 1]
    cut = head.rfind(" ")
    return (head[:cut] if cut > 0 else text[:room]).rstrip()


def copyable_prompt(
    prompt: str,
    *,
    negative: str = "",
    width: int = 0,
    height: int = 0,
    seed: int | None = None,
    quality: Quality | str | None = None,
    limit: int = COPY_TEXT_LIMIT,
) -> str:
    """The prompt and its parameters in at most ``limit`` characters (see the module's word)."""
    params = []
    aspect = aspect_of(width, height)
    if aspect:
        params.append(f"--ar {aspect}")
    if seed is not None:
        params.append(f"--seed {seed}")
    if quality and str(quality) != Quality.AUTO.value:
        params.append(f"--q {Quality(quality).value}")
    tail = " ".join(params)
    negative = " ".join(negative.split())
    if negative:
        with_negative = f"--no {negative} {tail}".strip()
        if len(with_negative) + 1 + MIN_PROMPT <= limit or len(with_negative) + 1 + len(prompt) <= limit:
            tail = with_negative
    room = limit - len(tail) - (1 if tail else 0)
    text = _cut(prompt, max(room, 0))
    return f"{text} {tail}".strip()[:limit] or prompt[:limit]
