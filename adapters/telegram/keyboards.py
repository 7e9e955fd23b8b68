"""Inline keyboards and their callback data (aiogram ``CallbackData`` factories).

Callback data must fit in 64 bytes: a one-letter prefix, a short action and a 32-character job id.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import CopyTextButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from adapters.telegram.i18n import UiTexts
from adapters.telegram.links import button_url
from domain.models import Locale, Quality
from domain.params import COMMON_RATIOS
from domain.users import JobRecord, SendAs, UserPrefs


class ResultAction(CallbackData, prefix="r"):
    """A button under a finished picture: ``new`` seed, ``var`` (variations), ``png`` original,
    ``rep`` (report it to the admins)."""

    action: str
    job: str


class CancelButton(CallbackData, prefix="c"):
    job: str  # a job id, or "all"


class SetPref(CallbackData, prefix="s"):
    field: str  # ar | q | lang | as | tr
    value: str


def result_keyboard(
    t: UiTexts,
    locale: Locale,
    job_id: str,
    url: str | None,
    *,
    with_png: bool = True,
    variations: int = 3,
    report: bool = True,
    share: str | None = None,
    copy: str | None = None,
) -> InlineKeyboardMarkup:
    """The buttons under a picture. ``url`` becomes a link button only when Telegram takes it
    (``links.button_url``); ``report``: a button that sends the picture to the admins (``rep``);
    ``share``: a "share" button that opens inline mode with this text; ``copy``: a "copy prompt"
    button that puts this text on the clipboard (``copy_prompt.copyable_prompt``)."""
    kb = InlineKeyboardBuilder()
    kb.button(text=t(locale, "button-new-seed"), callback_data=ResultAction(action="new", job=job_id))
    kb.button(
        text=t(locale, "button-variations", count=variations),
        callback_data=ResultAction(action="var", job=job_id),
    )
    sizes = [2]
    row = 0
    if with_png:
        kb.button(text=t(locale, "button-png"), callback_data=ResultAction(action="png", job=job_id))
        row += 1
    link = button_url(url)
    if link:
        kb.button(text=t(locale, "button-link"), url=link)
        row += 1
    if row:
        sizes.append(row)
    last = 0
    if copy:
        kb.button(text=t(locale, "button-copy"), copy_text=CopyTextButton(text=copy))
        last += 1
    if report:
        kb.button(text=t(locale, "button-report"), callback_data=ResultAction(action="rep", job=job_id))
        last += 1
    if last:
        sizes.append(last)
    if share is not None:
        kb.button(text=t(locale, "button-share"), switch_inline_query=share)
        sizes.append(1)
    kb.adjust(*sizes)
    return kb.as_markup()


def album_keyboard(
    t: UiTexts,
    locale: Locale,
    job_ids: list[str],
    urls: list[str | None],
    *,
    share: str | None = None,
) -> InlineKeyboardMarkup:
    """Under an album (a follow-up message: albums take no buttons): per picture n, a new seed
    from it, its original PNG and its link where Telegram takes it."""
    kb = InlineKeyboardBuilder()
    sizes = []
    for n, (job_id, url) in enumerate(zip(job_ids, urls, strict=True), 1):
        kb.button(text=t(locale, "button-album-new-seed", n=n), callback_data=ResultAction(action="new", job=job_id))
        kb.button(text=t(locale, "button-album-png", n=n), callback_data=ResultAction(action="png", job=job_id))
        link = button_url(url)
        if link:
            kb.button(text=t(locale, "button-history-link", n=n), url=link)
        sizes.append(3 if link else 2)
    if share is not None:
        kb.button(text=t(locale, "button-share"), switch_inline_query=share)
        sizes.append(1)
    kb.adjust(*sizes)
    return kb.as_markup()


def retry_keyboard(t: UiTexts, locale: Locale, job_id: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t(locale, "button-retry"), callback_data=ResultAction(action="new", job=job_id))
    return kb.as_markup()


def cancel_keyboard(t: UiTexts, locale: Locale, job_id: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t(locale, "button-cancel"), callback_data=CancelButton(job=job_id))
    return kb.as_markup()


def cancel_choice_keyboard(t: UiTexts, locale: Locale, jobs: list[JobRecord]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for i, job in enumerate(jobs, 1):
        kb.button(
            text=t(locale, "button-cancel-one", n=i, prompt=short(job.prompt, 40)),
            callback_data=CancelButton(job=job.job_id),
        )
    kb.button(text=t(locale, "button-cancel-all"), callback_data=CancelButton(job="all"))
    kb.adjust(1)
    return kb.as_markup()


def history_keyboard(
    t: UiTexts,
    locale: Locale,
    links: list[tuple[int, str, str | None]],
) -> InlineKeyboardMarkup | None:
    """One button per picture (n, job id, link): its full-size link where Telegram takes it,
    else its original PNG."""
    kb = InlineKeyboardBuilder()
    for n, job_id, url in links:
        link = button_url(url)
        if link:
            kb.button(text=t(locale, "button-history-link", n=n), url=link)
        else:
            kb.button(text=t(locale, "button-history-png", n=n), callback_data=ResultAction(action="png", job=job_id))
    if not kb.buttons:
        return None
    kb.adjust(5)
    return kb.as_markup()


ASPECTS = ("auto", *COMMON_RATIOS)
QUALITY_CHOICES = (Quality.AUTO, Quality.FAST, Quality.BALANCED, Quality.QUALITY)
LANGUAGES = ("auto", Locale.EN.value, Locale.RU.value)
SEND_AS = (SendAs.PHOTO.value, SendAs.DOCUMENT.value)


def settings_keyboard(t: UiTexts, locale: Locale, prefs: UserPrefs) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()

    def mark(label: str, chosen: bool) -> str:
        return f"✓ {label}" if chosen else label

    current_aspect = prefs.aspect or "auto"
    for value in ASPECTS:
        label = t(locale, "settings-aspect-auto") if value == "auto" else value
        kb.button(
            text=mark(label, value == current_aspect), callback_data=SetPref(field="ar", value=value.replace(":", "x"))
        )
    for q in QUALITY_CHOICES:
        kb.button(
            text=mark(t(locale, f"quality-{q.value}"), prefs.quality == q),
            callback_data=SetPref(field="q", value=q.value),
        )
    current_lang = prefs.locale.value if prefs.locale else "auto"
    for value in LANGUAGES:
        kb.button(
            text=mark(t(locale, f"language-{value}"), value == current_lang),
            callback_data=SetPref(field="lang", value=value),
        )
    for value in SEND_AS:
        kb.button(
            text=mark(t(locale, f"send-as-{value}"), prefs.send_as.value == value),
            callback_data=SetPref(field="as", value=value),
        )
    for value in ("on", "off"):
        kb.button(
            text=mark(t(locale, f"translate-{value}"), prefs.translate == (value == "on")),
            callback_data=SetPref(field="tr", value=value),
        )
    kb.adjust(4, 4, 4, 3, 2, 2)
    return kb.as_markup()


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
