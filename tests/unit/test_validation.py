from __future__ import annotations

import pytest

from domain import errors
from domain.models import Locale
from domain.validation import Limits, check_seed, check_size, clean_negative_prompt, clean_prompt

LIMITS = Limits(max_prompt_chars=20)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", errors.EmptyPrompt),
        (None, errors.EmptyPrompt),
        ("   \n\t ", errors.EmptyPrompt),
        ("x" * 21, errors.PromptTooLong),
        ("cat\x00dog", errors.PromptControlCharacters),
        ("\x1b[31mred", errors.PromptControlCharacters),
        ("🌅🌊🔥", errors.PromptNoContent),
        ("!!! ???", errors.PromptNoContent),
    ],
)
def test_bad_prompts_raise_typed_errors(text, error):
    with pytest.raises(error):
        clean_prompt(text, LIMITS)


def test_too_long_reports_length_and_limit():
    with pytest.raises(errors.PromptTooLong) as info:
        clean_prompt("y" * 25, LIMITS)
    assert info.value.params == {"field": "prompt", "length": 25, "limit": 20}
    assert info.value.code == "prompt_too_long"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  a  cat\n on a\tmat ", "a cat on a mat"),
        ("Закат над океаном", "Закат над океаном"),
        ("שקיעה מעל הים", "שקיעה מעל הים"),  # right-to-left text is welcome
        ("🌅 sunset", "🌅 sunset"),
    ],
)
def test_good_prompts_are_folded(text, expected):
    assert clean_prompt(text, LIMITS) == expected


def test_length_is_counted_after_folding_white_space():
    assert clean_prompt("a" + " " * 50 + "b", LIMITS) == "a b"


def test_negative_prompt_may_be_empty():
    assert clean_negative_prompt("", LIMITS) == ""
    assert clean_negative_prompt("  blurry ", LIMITS) == "blurry"
    with pytest.raises(errors.PromptTooLong) as info:
        clean_negative_prompt("z" * 30, LIMITS)
    assert info.value.params["field"] == "negative_prompt"


@pytest.mark.parametrize(("w", "h"), [(256, 256), (1024, 768), (1536, 1536)])
def test_supported_sizes(w, h):
    assert check_size(w, h, Limits()) == (w, h)


@pytest.mark.parametrize(("w", "h"), [(100, 256), (2048, 1024), (1000, 1024), (0, 0), (-128, 256)])
def test_unsupported_sizes(w, h):
    with pytest.raises(errors.UnsupportedSize):
        check_size(w, h, Limits())


def test_seed_range():
    assert check_seed(0) == 0
    assert check_seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32):
        with pytest.raises(errors.InvalidSeed):
            check_seed(bad)


@pytest.mark.parametrize(
    ("code", "locale"),
    [("ru", Locale.RU), ("ru-RU", Locale.RU), ("uk", Locale.RU), ("en-GB", Locale.EN), (None, Locale.EN), ("de", Locale.EN)],
)
def test_locale_from_telegram_language_code(code, locale):
    assert Locale.from_language_code(code) == locale
