"""Prompt parameters in the style users know from image bots: ``--ar 16:9``, ``--no <negative>``,
``--seed N``, ``--q fast|balanced|quality``.

Pure functions: ``parse_prompt`` splits a message into the prompt and its parameters, raising a
typed error (an ``InvalidRequest``, ``domain.errors``) that names the valid choices when something is wrong, so the
front can say so in the user's language and queue nothing. ``size_for_aspect`` maps an aspect ratio
to a size the model supports (multiples of 128 within ``Limits``, the ratio kept within 5 %).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from domain.errors import (
    InvalidAspectRatio,
    InvalidQuality,
    InvalidSeed,
    MissingParameterValue,
    PromptControlCharacters,
    UnknownParameter,
)
from domain.models import Quality
from domain.validation import MAX_SEED, Limits, has_control_characters, strip_invisible

PARAMETERS = ("--ar", "--no", "--seed", "--q")
VALID_PARAMETERS = ", ".join(PARAMETERS)
QUALITIES = (Quality.FAST, Quality.BALANCED, Quality.QUALITY, Quality.AUTO)
VALID_QUALITIES = ", ".join(q.value for q in QUALITIES)
# The ratios offered on buttons; any W:H within the limits is accepted in a message.
COMMON_RATIOS = ("1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16")

# Phones turn "--" into an en or em dash as you type: "—ar 16:9" means "--ar 16:9".
_FLAG = re.compile(r"^(?:--|—|–)([A-Za-z][A-Za-z0-9_-]*)$")
_RATIO = re.compile(r"^(\d{1,4})\s*[:x×/]\s*(\d{1,4})$")


@dataclass(frozen=True)
class AspectRatio:
    width: int
    height: int

    @property
    def ratio(self) -> float:
        return self.width / self.height

    def __str__(self) -> str:
        return f"{self.width}:{self.height}"


@dataclass(frozen=True)
class PromptParams:
    """A message split into its prompt and the parameters given (``None``: not given)."""

    prompt: str
    negative_prompt: str = ""
    aspect: AspectRatio | None = None
    seed: int | None = None
    quality: Quality | None = None


def max_ratio(limits: Limits) -> int:
    """The widest ratio a size within the limits can have (1536/256 = 6 by default)."""
    return max(1, limits.max_side // max(limits.min_side, 1))


def parse_aspect(value: str, limits: Limits) -> AspectRatio:
    high = max_ratio(limits)
    match = _RATIO.match(value.strip())
    error = InvalidAspectRatio(value=value, low=f"1:{high}", high=f"{high}:1", examples=", ".join(COMMON_RATIOS))
    if not match:
        raise error
    w, h = int(match.group(1)), int(match.group(2))
    if w <= 0 or h <= 0 or w / h > high or h / w > high:
        raise error
    divisor = math.gcd(w, h)
    return AspectRatio(w // divisor, h // divisor)


def parse_seed(value: str) -> int:
    try:
        seed = int(value)
    except ValueError:
        raise InvalidSeed(value=value, max=MAX_SEED) from None
    if not 0 <= seed <= MAX_SEED:
        raise InvalidSeed(value=value, max=MAX_SEED)
    return seed


def parse_quality(value: str) -> Quality:
    try:
        return Quality(value.strip().lower())
    except ValueError:
        raise InvalidQuality(value=value, valid=VALID_QUALITIES) from None


# English examples; a catalogue picks its own by ``param`` (the name without dashes) where the
# words need translating (the Russian one for --no).
_EXAMPLES = {"--ar": "--ar 16:9", "--no": "--no text, blur", "--seed": "--seed 42", "--q": "--q fast"}


def _flag_name(token: str) -> str | None:
    match = _FLAG.match(token)
    return f"--{match.group(1).lower()}" if match else None


_DEFAULT_LIMITS = Limits()


def parse_prompt(text: str | None, limits: Limits = _DEFAULT_LIMITS) -> PromptParams:
    """Split ``text`` into the prompt and its parameters; raise an ``InvalidRequest`` naming the
    valid parameters or values when one is unknown or wrong.

    Parameters may stand anywhere; ``--no`` takes every word up to the next parameter. A token such
    as ``-3`` or ``--`` alone is text, not a parameter. The prompt itself is returned as written
    (without the parameters); ``validation.clean_prompt`` checks it afterwards.
    """
    text = text or ""
    if has_control_characters(text):
        raise PromptControlCharacters(field="prompt")  # refused, not silently dropped by split()
    # Invisible characters go first: "--ar\u200b 16:9" is "--ar 16:9", and none reach a caption.
    tokens = strip_invisible(text).split()
    words: list[str] = []
    negative: list[str] = []
    aspect: AspectRatio | None = None
    seed: int | None = None
    quality: Quality | None = None
    i = 0
    while i < len(tokens):
        name = _flag_name(tokens[i])
        if name is None:
            words.append(tokens[i])
            i += 1
            continue
        if name not in PARAMETERS:
            raise UnknownParameter(name=tokens[i], valid=VALID_PARAMETERS)
        if name == "--no":
            j = i + 1
            while j < len(tokens) and _flag_name(tokens[j]) is None:
                negative.append(tokens[j])
                j += 1
            if j == i + 1:
                raise MissingParameterValue(name=name, example=_EXAMPLES[name], param=name.lstrip("-"))
            i = j
            continue
        if i + 1 >= len(tokens) or _flag_name(tokens[i + 1]) is not None:
            raise MissingParameterValue(name=name, example=_EXAMPLES[name], param=name.lstrip("-"))
        value = tokens[i + 1]
        if name == "--ar":
            aspect = parse_aspect(value, limits)
        elif name == "--seed":
            seed = parse_seed(value)
        else:
            quality = parse_quality(value)
        i += 2
    return PromptParams(
        prompt=" ".join(words),
        negative_prompt=" ".join(negative),
        aspect=aspect,
        seed=seed,
        quality=quality,
    )


def _multiples(limits: Limits) -> list[int]:
    m = limits.size_multiple
    first = -(-limits.min_side // m) * m
    return list(range(first, limits.max_side + 1, m))


RATIO_TOLERANCE = 0.05
"""How far a picture's shape may be from the one asked for (5 %: 16:9 may be 7:4, never 2:1)."""
AREA_WEIGHT = 0.1
"""How much missing the pixel count matters against missing the ratio (both on a log scale)."""


def closest_size(ratio: float, area: float, widths: Sequence[int], heights: Sequence[int]) -> tuple[int, int] | None:
    """The (width, height) of the given sides that best keeps ``ratio`` at about ``area`` pixels.

    Only sizes within ``RATIO_TOLERANCE`` of the ratio are considered when there are any (the
    shape is what a user notices); among them the ratio still counts ten times as much as the
    area, both on a log scale (2x too big and 2x too small count the same). None: no sides."""
    if not widths or not heights:
        return None
    target = math.log(ratio)
    pairs = [(w, h) for w in widths for h in heights]
    close = [(w, h) for w, h in pairs if abs(w / h / ratio - 1) <= RATIO_TOLERANCE + 1e-9]
    best: tuple[float, int, int] | None = None
    for w, h in close or pairs:
        score = abs(math.log(w / h) - target) + AREA_WEIGHT * abs(math.log(w * h / area))
        if best is None or score < best[0] - 1e-12:
            best = (score, w, h)
    assert best is not None
    return best[1], best[2]


def size_for_aspect(aspect: AspectRatio, limits: Limits, area: int = 1024 * 1024) -> tuple[int, int]:
    """The supported size closest to ``aspect`` with about ``area`` pixels: multiples of
    ``size_multiple`` within the limits, within 5 % of the ratio wherever the limits allow one
    (``closest_size``), so that every quality profile can keep the shape too (``QualityProfile.fit_size``)."""
    sides = _multiples(limits)
    found = closest_size(aspect.ratio, area, sides, sides)
    if found is None:
        raise InvalidAspectRatio(value=str(aspect), low="1:1", high="1:1", examples="1:1")
    return found
