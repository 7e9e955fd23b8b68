"""The bot's own texts (``UiTexts``) with Project Fluent: one ``.ftl`` catalogue per language under
``locales/``. (Translating users' prompts for the model is another thing: the ``PromptTranslator``
port.)"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluent.runtime import FluentBundle, FluentResource

from domain.models import Locale

if TYPE_CHECKING:
    from aiogram.types import User

LOCALES_DIR = Path(__file__).parent / "locales"


class MissingTranslation(KeyError):
    pass


class UiTexts:
    """Every user-visible text of the bot, by key and locale (falls back to English)."""

    def __init__(self, directory: Path = LOCALES_DIR, fallback: Locale = Locale.EN) -> None:
        self.fallback = fallback
        self.bundles: dict[Locale, FluentBundle] = {}
        for locale in Locale:
            # Isolation marks (U+2068/U+2069) would show up as stray characters in Telegram.
            bundle = FluentBundle([locale.value], use_isolating=False)
            for path in sorted((directory / locale.value).glob("*.ftl")):
                bundle.add_resource(FluentResource(path.read_text(encoding="utf-8")))
            self.bundles[locale] = bundle

    def keys(self, locale: Locale) -> set[str]:
        return set(self.bundles[locale]._messages)  # fluent has no public listing

    def has(self, key: str, locale: Locale | str = Locale.EN) -> bool:
        locale = Locale(locale) if locale in set(Locale) else self.fallback
        return self.bundles[locale].has_message(key) or self.bundles[self.fallback].has_message(key)

    def __call__(self, locale: Locale | str, key: str, **args: Any) -> str:
        locale = Locale(locale) if locale in set(Locale) else self.fallback
        for candidate in (locale, self.fallback):
            bundle = self.bundles[candidate]
            if bundle.has_message(key):
                pattern = bundle.get_message(key).value
                if pattern is None:  # a message with attributes only: no text of its own
                    raise MissingTranslation(f"{candidate}:{key}: no value")
                text, errors = bundle.format_pattern(pattern, args)
                if errors or not isinstance(text, str):
                    raise MissingTranslation(f"{candidate}:{key}: {errors[0] if errors else 'no text'}")
                return text
        raise MissingTranslation(f"{locale}:{key}")


def user_locale(user: User | None) -> Locale:
    """The locale of a Telegram user (their app's language), English when unknown."""
    return Locale.from_language_code(user.language_code if user else None)
