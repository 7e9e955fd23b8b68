"""The caption's note on how the model read the prompt: "understood as: ..." when it was
translated, a warning when the translation failed, and the words past CLIP's token limit.

A translation by the tiny random-weight model (``GENERATOR=tiny``) is gibberish: never "understood
as", only a line that says a test model translated it."""

from __future__ import annotations

from adapters.telegram.i18n import UiTexts
from adapters.telegram.keyboards import short
from domain.models import Locale, Result, TranslationStatus

UNDERSTOOD_CHARS = 300
CUT_CHARS = 150


def understood_lines(t: UiTexts, locale: Locale, result: Result) -> str:
    """The note's lines in the user's language ("" when there is nothing to say)."""
    seen = result.understood
    if seen is None:
        return ""
    lines = []
    if seen.translation == TranslationStatus.TRANSLATED and result.random_translation:
        lines.append(t(locale, "result-random-translation"))
    elif seen.translation == TranslationStatus.TRANSLATED:
        prompt = short(seen.prompt, UNDERSTOOD_CHARS)
        if seen.negative_translated and seen.negative_prompt:
            negative = short(seen.negative_prompt, UNDERSTOOD_CHARS // 2)
            lines.append(t(locale, "result-understood-negative", prompt=prompt, negative=negative))
        else:
            lines.append(t(locale, "result-understood", prompt=prompt))
    elif seen.translation == TranslationStatus.FAILED:
        lines.append(t(locale, "result-translation-failed"))
    if seen.cut:
        lines.append(t(locale, "result-cut", limit=seen.token_limit or 77, words=short(seen.cut, CUT_CHARS)))
    return "\n".join(lines)
