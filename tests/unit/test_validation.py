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
    [
        ("ru", Locale.RU),
        ("ru-RU", Locale.RU),
        ("uk", Locale.RU),
        ("en-GB", Locale.EN),
        (None, Locale.EN),
        ("de", Locale.EN),
    ],
)
def test_locale_from_telegram_language_code(code, locale):
    assert Locale.from_language_code(code) == locale


INVISIBLE = [
    *(chr(c) for c in range(0x202A, 0x202F)),  # bidi embeddings and overrides (U+202E: right-to-left)
    *(chr(c) for c in range(0x2066, 0x206A)),  # bidi isolates
    *(chr(c) for c in range(0x200B, 0x2010)),  # zero-width space, joiners, direction marks
    "\u2060",  # word joiner
    "\ufeff",  # zero-width no-break space (BOM)
    "\u00ad",  # soft hyphen
    "\u061c",  # Arabic letter mark
    "\U000e0041",  # a tag character (invisible text smuggled in)
]


@pytest.mark.parametrize("ch", INVISIBLE)
def test_invisible_and_bidi_characters_are_dropped(ch):
    assert clean_prompt(f"a{ch} cat{ch} on a mat{ch}", Limits()) == "a cat on a mat"
    assert clean_negative_prompt(f"{ch}blur{ch}", Limits()) == "blur"


def test_every_format_character_is_dropped_but_the_joiner_inside_an_emoji():
    import sys
    import unicodedata

    from domain.validation import strip_invisible

    every_cf = "".join(chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf")
    assert len(every_cf) > 150
    assert strip_invisible(f"sun{every_cf}set") == "sunset"
    family, rainbow = "👩\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈"
    assert strip_invisible(f"{family} and {rainbow} flag") == f"{family} and {rainbow} flag"
    assert strip_invisible("cat\u200ddog 🐱\u200d") == "catdog 🐱"  # not between two emoji: dropped


def test_a_prompt_of_only_invisible_characters_is_empty():
    with pytest.raises(errors.EmptyPrompt):
        clean_prompt("\u200b\u202e\u2060 \ufeff", Limits())
    assert clean_negative_prompt("\u200b\u200b", Limits()) == ""


def test_a_lone_surrogate_is_a_control_character():
    with pytest.raises(errors.PromptControlCharacters):
        clean_prompt("a cat \ud800", Limits())


def test_parameters_are_read_through_invisible_characters():
    from domain.params import parse_prompt

    params = parse_prompt("a\u202e cat --ar\u200b 16:9 --no\u2060 blur\u200f")
    assert (params.prompt, params.negative_prompt, str(params.aspect)) == ("a cat", "blur", "16:9")


def test_check_job_is_the_bots_rules_on_a_job():
    from domain.models import Job
    from domain.validation import check_job

    clean = Job(user_id=1, chat_id=1, prompt="a cat", width=512, height=512, seed=1)
    assert check_job(clean, Limits()) is clean
    messy = clean.model_copy(update={"prompt": " a\u200b  cat\u202e ", "negative_prompt": "\ufeff"})
    checked = check_job(messy, Limits())
    assert (checked.prompt, checked.negative_prompt, checked.job_id) == ("a cat", "", clean.job_id)
    for fields, error in [
        ({"width": 1, "height": 1}, errors.UnsupportedSize),
        ({"width": 500}, errors.UnsupportedSize),
        ({"seed": -1}, errors.InvalidSeed),
        ({"seed": 2**32}, errors.InvalidSeed),
        ({"prompt": "x" * 1001}, errors.PromptTooLong),
        ({"prompt": ""}, errors.EmptyPrompt),
        ({"negative_prompt": "a\x00b"}, errors.PromptControlCharacters),
        ({"aspect": -1.0}, errors.InvalidAspectRatio),
        ({"aspect": 100.0}, errors.InvalidAspectRatio),
        ({"aspect": float("nan")}, errors.InvalidAspectRatio),
    ]:
        with pytest.raises(error):
            check_job(clean.model_copy(update=fields), Limits())
