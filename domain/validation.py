"""Checks of what a user asks for: the bot applies them before anything is queued, and the worker
applies the very same ones to every job it takes (``check_job``), since a job on the queue may
not have come through this project's bot."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from domain.errors import (
    EmptyPrompt,
    InvalidAspectRatio,
    InvalidSeed,
    PromptControlCharacters,
    PromptNoContent,
    PromptTooLong,
    UnsupportedSize,
)
from domain.models import Job

MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = 1000
    min_side: int = 256
    max_side: int = 1536
    size_multiple: int = 128  # Würstchen works on multiples of 128


_ZWJ = "\u200d"
_VS16 = "\ufe0f"  # the emoji presentation selector


def _pictograph(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk") or ch == _VS16


def strip_invisible(text: str) -> str:
    """``text`` without its invisible format characters (Unicode category Cf): the bidi controls
    (U+202A-U+202E, U+2066-U+2069) that make a caption read differently from what was sent,
    zero-width spaces and marks (U+200B-U+200F, U+2060, U+FEFF), soft hyphens, tag characters
    and the rest. They draw nothing, so the model loses nothing; they would only hide words from
    a reader (and a reader from words). The one kept is the zero-width joiner between two emoji,
    which makes one picture of them (a family, a rainbow flag)."""
    if text.isascii():
        return text
    out: list[str] = []
    for i, ch in enumerate(text):
        visible = unicodedata.category(ch) != "Cf"
        joins_emoji = ch == _ZWJ and bool(out) and _pictograph(out[-1]) and _pictograph(text[i + 1 : i + 2] or " ")
        if visible or joins_emoji:
            out.append(ch)
    return "".join(out)


def has_control_characters(text: str) -> bool:
    """True when ``text`` holds a control character other than newline, return and tab (NUL,
    escape sequences), or a lone surrogate (not text at all: it cannot even be encoded to send)."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\r\t" for ch in text)


def clean_prompt(text: str | None, limits: Limits, *, field: str = "prompt") -> str:
    """Return the prompt with white space folded and invisible characters removed, or raise a
    typed error saying what is wrong.

    Newlines and tabs are white space; any other control character (NUL, escape sequences, ...) is
    refused rather than silently dropped, so the user knows what was sent. Invisible format
    characters are dropped (``strip_invisible``). Right-to-left text and any script are welcome;
    a prompt of only emoji or punctuation is refused, since the model cannot draw from it.
    """
    text = unicodedata.normalize("NFC", text or "")
    if has_control_characters(text):
        raise PromptControlCharacters(field=field)
    text = strip_invisible(text)
    text = " ".join(text.split())
    if not text:
        raise EmptyPrompt(field=field)
    if len(text) > limits.max_prompt_chars:
        raise PromptTooLong(field=field, length=len(text), limit=limits.max_prompt_chars)
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        raise PromptNoContent(field=field)
    return text


def clean_negative_prompt(text: str | None, limits: Limits) -> str:
    """A negative prompt may be empty (or only invisible characters); otherwise the prompt's rules apply."""
    if not text or not strip_invisible(text).strip():
        return ""
    return clean_prompt(text, limits, field="negative_prompt")


def check_size(width: int, height: int, limits: Limits) -> tuple[int, int]:
    ok = all(
        limits.min_side <= side <= limits.max_side and side % limits.size_multiple == 0 for side in (width, height)
    )
    if not ok:
        raise UnsupportedSize(
            width=width,
            height=height,
            min_side=limits.min_side,
            max_side=limits.max_side,
            multiple=limits.size_multiple,
        )
    return width, height


def check_seed(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise InvalidSeed(value=seed, max=MAX_SEED)
    return seed


def check_aspect(aspect: float, limits: Limits) -> float:
    """A job's asked ratio: 0 (none) or one that a size within the limits can have."""
    widest = max(1, limits.max_side // max(limits.min_side, 1))
    if aspect != 0 and not (1 / widest - 1e-9 <= aspect <= widest + 1e-9):  # NaN fails both
        raise InvalidAspectRatio(value=str(aspect), low=f"1:{widest}", high=f"{widest}:1", examples="1:1, 16:9")
    return aspect


def check_job(job: Job, limits: Limits) -> Job:
    """The rules a request meets at the bot, applied to a job: its prompt and negative prompt
    (characters, length, content), its size, its seed and its asked ratio. Returns the job with its prompts in
    their clean form (the same job when they were clean already); raises the ``InvalidRequest``
    that says what is wrong. The prompt filter is the other half (``domain.safety``)."""
    prompt = clean_prompt(job.prompt, limits)
    negative = clean_negative_prompt(job.negative_prompt, limits)
    check_size(job.width, job.height, limits)
    check_seed(job.seed)
    check_aspect(job.aspect, limits)
    if (prompt, negative) == (job.prompt, job.negative_prompt):
        return job
    return job.model_copy(update={"prompt": prompt, "negative_prompt": negative})


def shown_prompt(text: str, limits: Limits) -> str:
    """A prompt that failed the checks, safe to repeat to its user: without control or invisible
    characters, white space folded, no longer than the limit (a job may carry megabytes)."""
    text = text[: limits.max_prompt_chars * 4]
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs") or ch in "\n\r\t")
    return " ".join(strip_invisible(kept).split())[: limits.max_prompt_chars]
