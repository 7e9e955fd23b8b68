"""What a finished picture's caption and a failure say, within Telegram's limits (the caption
at most 1024 characters, the prompt shortened to fit), and when a picture fits as a photo."""

from __future__ import annotations

from adapters.telegram.i18n import UiTexts
from adapters.telegram.keyboards import short
from adapters.telegram.understood import understood_lines
from domain.models import GeneratorKind, Locale, Result

# Telegram's limits for a photo; beyond them the picture goes as a document (up to 50 MB).
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20.0
CAPTION_LIMIT = 1024
# Results refused for content: their message (which never repeats the prompt).
REFUSALS = {"prompt_refused": "error-prompt_refused", "image_refused": "refused-image"}
# Pictures that are not the model's work, and the line that says so under every one of them.
STAND_INS = {GeneratorKind.PLACEHOLDER: "result-placeholder", GeneratorKind.TINY: "result-tiny"}


def fits_photo(width: int, height: int, size_bytes: int) -> bool:
    if width <= 0 or height <= 0:
        return False
    return (
        size_bytes < PHOTO_MAX_BYTES
        and width + height <= PHOTO_MAX_SIDES_SUM
        and max(width, height) / min(width, height) <= PHOTO_MAX_RATIO
    )


def caption(t: UiTexts, result: Result, locale: Locale, negative: str = "", link: str | None = None) -> str:
    """The prompt, then extra lines (what to leave out, a link as text), then the details;
    the prompt is shortened so that the whole fits Telegram's 1024 characters."""
    reason = result.profile_reason or ""
    reason_key = f"quality-reason-{reason}"
    reason_text = t(locale, reason_key) if t.has(reason_key, locale) else reason
    profile = result.profile or ""
    profile_key = f"quality-{profile}"
    profile_text = t(locale, profile_key) if profile and t.has(profile_key, locale) else profile
    details = t(
        locale,
        "result-details",
        seed=str(result.seed),
        width=str(result.width),
        height=str(result.height),
        profile=profile_text,
        reason=reason_text,
        seconds=f"{result.timings.total_s:.1f}",
    )
    lines = []
    stand_in = STAND_INS.get(result.generator_kind) if result.generator_kind else None
    if stand_in:  # first: a placeholder or noise must never pass for the model's work
        lines.append(t(locale, stand_in))
    if negative:
        lines.append(t(locale, "result-negative", negative=short(negative, 200)))
    understood = understood_lines(t, locale, result)  # "understood as", CLIP's cut
    if understood:
        lines.append(understood)
    if link:
        line = t(locale, "result-link", url=link)
        if len(line) + len(details) + sum(len(x) + 1 for x in lines) + 40 <= CAPTION_LIMIT:
            lines.append(line)
    extra = "".join("\n" + line for line in lines)
    room = CAPTION_LIMIT - len(details) - len(extra) - 1
    return f"{short(result.prompt, max(20, room))}{extra}\n{details}"[:CAPTION_LIMIT]


def failure_text(t: UiTexts, result: Result, locale: Locale, code: str | None = None) -> str:
    code = code or (result.error_code.value if result.error_code else "generation_failed")
    if code in REFUSALS:  # no prompt repeated, no "try again": the same prompt is refused again
        return t(locale, REFUSALS[code])
    reason = t(locale, f"reason-{code}") if t.has(f"reason-{code}", locale) else code
    return t(locale, "failed", reason=reason, prompt=short(result.prompt, 200))
