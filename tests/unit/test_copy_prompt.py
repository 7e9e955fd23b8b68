"""The "copy prompt" button's text: the prompt and its parameters as the bot reads them back
(``parse_prompt``), within Telegram's 256 characters, never cut inside a parameter."""

from __future__ import annotations

from adapters.telegram.copy_prompt import COPY_TEXT_LIMIT, aspect_of, copyable_prompt
from domain.models import Quality
from domain.params import parse_prompt
from domain.validation import Limits

LIMITS = Limits(max_prompt_chars=1000)


def test_a_short_prompt_goes_whole_and_parses_back_to_the_same_parameters():
    text = copyable_prompt(
        "a lighthouse in a storm", negative="people, text", width=1024, height=576, seed=42, quality=Quality.FAST
    )
    assert text == "a lighthouse in a storm --no people, text --ar 16:9 --seed 42 --q fast"
    params = parse_prompt(text, LIMITS)
    assert params.prompt == "a lighthouse in a storm" and params.negative_prompt == "people, text"
    assert (str(params.aspect), params.seed, params.quality) == ("16:9", 42, Quality.FAST)


def test_auto_quality_and_no_negative_are_left_out():
    assert copyable_prompt("a cat", width=512, height=512, seed=7, quality=Quality.AUTO) == "a cat --ar 1:1 --seed 7"
    assert aspect_of(896, 512) == "7:4"


def test_a_long_prompt_is_cut_at_a_word_and_every_parameter_stays_whole():
    prompt = " ".join(f"word{n}" for n in range(200))  # about 1,400 characters
    text = copyable_prompt(prompt, negative="blur", width=768, height=1024, seed=4294967295, quality="quality")
    assert len(text) <= COPY_TEXT_LIMIT
    assert text.endswith(" --no blur --ar 3:4 --seed 4294967295 --q quality")
    params = parse_prompt(text, LIMITS)
    assert prompt.startswith(params.prompt + " ")  # cut between words, nothing added
    assert params.prompt.split()[-1].startswith("word") and "…" not in text
    assert (params.negative_prompt, params.seed, str(params.aspect)) == ("blur", 4294967295, "3:4")


def test_a_negative_prompt_too_long_to_fit_is_left_out_whole_not_cut():
    negative = ", ".join(f"thing{n}" for n in range(60))  # over 400 characters
    text = copyable_prompt("a red fox in the snow", negative=negative, width=512, height=512, seed=1)
    assert text == "a red fox in the snow --ar 1:1 --seed 1"
    one_word = copyable_prompt("y" * 600, seed=3)
    assert one_word == "y" * (COPY_TEXT_LIMIT - len(" --seed 3")) + " --seed 3"  # a single word: cut in it
