"""Checks of what a user asks for, before anything is queued."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from domain.errors import (
    EmptyPrompt,
    InvalidSeed,
    PromptControlCharacters,
    PromptNoContent,
    PromptTooLong,
    UnsupportedSize,
)

MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = 1000
    min_side: int = 256
    max_side: int = 1536
    size_multiple: int = 128  # Würstchen works on multiples of 128


def clean_prompt(text: str | None, limits: Limits, *, field: str = "prompt") -> str:
    """Return the prompt with white space folded, or raise a typed error saying what is wrong.

    Newlines and tabs are white space; any other control character (NUL, escape sequences, ...) is
    refused rather than silently dropped, so the user knows what was sent. Right-to-left text and
    any script are welcome; a prompt of only emoji or punctuation is refused, since the model
    cannot draw from it.
    """
    text = unicodedata.normalize("NFC", text or "")
    for ch in text:
        if ch in "\n\r\t":
            continue
        if unicodedata.category(ch) == "Cc":
            raise PromptControlCharacters(field=field)
    text = " ".join(text.split())
    if not text:
        raise EmptyPrompt(field=field)
    if len(text) > limits.max_prompt_chars:
        raise PromptTooLong(field=field, length=len(text), limit=limits.max_prompt_chars)
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        raise PromptNoContent(field=field)
    return text


def clean_negative_prompt(text: str | None, limits: Limits) -> str:
    """A negative prompt may be empty; otherwise the prompt's rules apply."""
    if not text or not text.strip():
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
