"""Prompt parameters (domain/params.py): pure parsing with typed errors, and aspect ratio sizes."""

from __future__ import annotations

import pytest

from domain.errors import (
    InvalidAspectRatio,
    InvalidQuality,
    InvalidSeed,
    MissingParameterValue,
    PromptControlCharacters,
    UnknownParameter,
)
from domain.models import Quality
from domain.params import (
    AspectRatio,
    parse_aspect,
    parse_prompt,
    size_for_aspect,
)
from domain.validation import Limits

L = Limits()


def test_no_parameters():
    p = parse_prompt("  a cat\n in the  snow ")
    assert (p.prompt, p.negative_prompt, p.aspect, p.seed, p.quality) == ("a cat in the snow", "", None, None, None)


def test_every_parameter_anywhere():
    p = parse_prompt("a cat --ar 16:9 in the snow --no dogs, blur --seed 42 --q FAST")
    assert p.prompt == "a cat in the snow"
    assert p.negative_prompt == "dogs, blur"
    assert p.aspect == AspectRatio(16, 9) and p.seed == 42 and p.quality == Quality.FAST


def test_phone_dashes_and_ratio_spellings():
    p = parse_prompt("a cat —ar 1920x1080 –seed 0 --q auto")
    assert p.aspect == AspectRatio(16, 9) and p.seed == 0 and p.quality == Quality.AUTO
    assert parse_prompt("x --ar 3/2").aspect == AspectRatio(3, 2)


def test_text_that_only_looks_like_a_flag():
    assert parse_prompt("a cat -- the best -3 degrees").prompt == "a cat -- the best -3 degrees"


@pytest.mark.parametrize(
    ("text", "error", "params"),
    [
        ("a cat --style anime", UnknownParameter, {"name": "--style", "valid": "--ar, --no, --seed, --q"}),
        ("a cat --ar", MissingParameterValue, {"name": "--ar", "example": "--ar 16:9"}),
        ("a cat --seed --q fast", MissingParameterValue, {"name": "--seed", "example": "--seed 42"}),
        ("a cat --no", MissingParameterValue, {"name": "--no", "example": "--no text, blur"}),
        ("a cat --ar 50:1", InvalidAspectRatio, {"value": "50:1", "low": "1:6", "high": "6:1"}),
        ("a cat --ar 1:7", InvalidAspectRatio, {"value": "1:7"}),
        ("a cat --ar 0:1", InvalidAspectRatio, {"value": "0:1"}),
        ("a cat --ar wide", InvalidAspectRatio, {"value": "wide"}),
        ("a cat --seed -3", InvalidSeed, {"value": "-3", "max": 2**32 - 1}),
        ("a cat --seed 4294967296", InvalidSeed, {"value": "4294967296"}),
        ("a cat --seed lucky", InvalidSeed, {"value": "lucky"}),
        ("a cat --q ultra", InvalidQuality, {"value": "ultra", "valid": "fast, balanced, quality, auto"}),
        ("a cat\x00", PromptControlCharacters, {}),
        ("a cat\x1f --ar 1:1", PromptControlCharacters, {}),  # split() would have eaten it
    ],
)
def test_errors_name_what_is_valid(text, error, params):
    with pytest.raises(error) as caught:
        parse_prompt(text, L)
    for key, value in params.items():
        assert caught.value.params[key] == value


@pytest.mark.parametrize("ratio", ["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9", "6:1", "1:6", "5:4"])
@pytest.mark.parametrize("area", [512 * 384, 1024 * 1024, 1536 * 1536])
def test_sizes_are_supported_and_close(ratio, area):
    aspect = parse_aspect(ratio, L)
    w, h = size_for_aspect(aspect, L, area)
    assert w % 128 == 0 and h % 128 == 0
    assert L.min_side <= w <= L.max_side and L.min_side <= h <= L.max_side
    # as close to the ratio as 128-pixel steps allow: within 5 % wherever the limits have such a size
    assert abs(w / h - aspect.ratio) / aspect.ratio < (0.25 if ratio in ("6:1", "1:6") else 0.05)


def test_known_sizes():
    assert size_for_aspect(AspectRatio(1, 1), L) == (1024, 1024)
    assert size_for_aspect(AspectRatio(16, 9), L) == (1408, 768)
    assert size_for_aspect(AspectRatio(9, 16), L) == (768, 1408)
    # 640x384 (5:3) would be nearer the area, but 6 % off the shape: 7:4 is 1.6 % off.
    assert size_for_aspect(AspectRatio(16, 9), L, 512 * 384) == (896, 512)
    assert size_for_aspect(AspectRatio(6, 1), L) == (1536, 256)


def test_ratio_limit_follows_the_limits():
    narrow = Limits(min_side=512, max_side=1024)
    with pytest.raises(InvalidAspectRatio) as caught:
        parse_aspect("3:1", narrow)
    assert caught.value.params["high"] == "2:1"
    assert parse_aspect("2:1", narrow) == AspectRatio(2, 1)
