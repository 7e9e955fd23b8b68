"""Russian and English for everything the bot says: the same keys, every key the code uses, every
error the domain can raise, and each message formats with its arguments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import domain.errors
from adapters.telegram.i18n import LOCALES_DIR, UiTexts
from domain.models import ErrorCode, Locale, Quality

ROOT = Path(__file__).resolve().parents[2] / "adapters" / "telegram"
t = UiTexts()


def test_both_languages_have_the_same_keys():
    assert t.keys(Locale.EN) == t.keys(Locale.RU)


def literal_keys() -> set[str]:
    keys = set()
    for path in ROOT.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r"""\bt\(\s*[\w.]+,\s*f?["']([a-z0-9_-]+)["']""", source))
        keys |= set(
            re.findall(
                r"""["']((?:error|status|cmd|queue|cancel|history|answer|button|settings|stats|result|quality|language|send-as|duration)-[a-z0-9_-]+)["']""",
                source,
            )
        )
    return keys


def test_every_key_the_code_names_exists():
    missing = {k for k in literal_keys() if not t.has(k, Locale.EN) or not t.has(k, Locale.RU)}
    assert not missing


def domain_error_codes() -> set[str]:
    codes = set()
    for value in vars(domain.errors).values():
        if isinstance(value, type) and issubclass(value, domain.errors.DomainError):
            codes.add(value.code)
    return codes


@pytest.mark.parametrize("locale", list(Locale))
def test_every_user_facing_error_and_choice_is_translated(locale):
    internal = {
        "error",
        "storage_error",
        "generation_error",
        "model_not_found",
        "recipient_gone",
        "limit_exceeded",
        "undecodable_message",
        "already_accepted",
    }
    for code in domain_error_codes() - internal:
        assert t.has(f"error-{code}", locale), code
    for code in ErrorCode:
        assert t.has(f"reason-{code.value}", locale)
    for q in Quality:
        assert t.has(f"quality-{q.value}", locale)
    from domain.credits import CheckoutRefusal

    for refusal in CheckoutRefusal:
        assert t.has(f"pay-refused-{refusal.value}", locale), refusal
    from adapters.telegram.commands import ADMIN_COMMANDS, ADMIN_PAYMENT_COMMANDS, COMMANDS, PAYMENT_COMMANDS

    for name in COMMANDS + ADMIN_COMMANDS + PAYMENT_COMMANDS + ADMIN_PAYMENT_COMMANDS:
        description = t(locale, f"cmd-{name}")
        assert 3 <= len(description) <= 256


def variables(node) -> set[str]:
    """The names of the variables a Fluent AST node uses."""
    from fluent.syntax import ast

    found = set()
    if isinstance(node, ast.VariableReference):
        found.add(node.id.name)
    if isinstance(node, ast.BaseNode):
        for value in vars(node).values():
            for child in value if isinstance(value, list) else [value]:
                found |= variables(child)
    return found


@pytest.mark.parametrize("locale", list(Locale))
def test_every_message_formats(locale):
    from fluent.syntax import ast, parse

    for path in (LOCALES_DIR / locale.value).glob("*.ftl"):
        for entry in parse(path.read_text(encoding="utf-8")).body:
            assert not isinstance(entry, ast.Junk), entry.content
            if not isinstance(entry, ast.Message):
                continue
            args = {name: 1 if name in ("count", "requested", "n") else "x" for name in variables(entry)}
            text = t(locale, entry.id.name, **args)
            assert text.strip() and "{" not in text, entry.id.name


@pytest.mark.parametrize(
    ("credits", "en", "ru"),
    [
        (1, "1 priority picture", "1 картинка без очереди"),
        (2, "2 priority pictures", "2 картинки без очереди"),
        (5, "5 priority pictures", "5 картинок без очереди"),
        (21, "21 priority pictures", "21 картинка без очереди"),
        (10_000, "10,000 priority pictures", "10\xa0000 картинок без очереди"),
    ],
)
def test_a_packs_number_of_pictures_agrees_with_its_noun(credits, en, ru):
    """An operator may sell any number of credits (STARS_PACKS): the invoice's title (1-32
    characters, Telegram's limit) and the pack's button read right in both languages."""
    assert t(Locale.EN, "invoice-title", credits=credits) == en
    assert t(Locale.RU, "invoice-title", credits=credits) == ru
    for locale in Locale:
        assert len(t(locale, "invoice-title", credits=credits)) <= 32
    assert t(Locale.EN, "buy-pack-button", credits=credits, stars=50).startswith(en.replace(" priority", ""))
    assert t(Locale.RU, "buy-pack-button", credits=credits, stars=50).startswith(ru.split(" без")[0])
    credits_en = "1 credit" if credits == 1 else f"{credits:,} credits"
    assert t(Locale.EN, "invoice-label", credits=credits) == credits_en
    assert t(Locale.EN, "invoice-description", credits=credits).startswith(f"{credits_en}:")
    assert t(Locale.EN, "pay-thanks", credits=credits, balance=credits).startswith(f"✅ Thank you! {credits_en} added")
