"""Which sizes Würstchen really takes, tried on the tiny model (the real diffusers classes and
the hub models' pipeline settings: the prior at 1/42.67 of the picture, rounded up; the decoder at
10.67 times that, rounded down; a DiffNeXt that unshuffles by 2 and halves three times; a VQGAN
that makes 4 pixels of each): multiples of 128 come out at exactly their size, 64 and 32 steps
fail or come out at another size. So the domain sizes every profile in steps of 128
(``domain.quality.SIZE_MULTIPLE``), and the sizes the profiles pick are drawn as they are."""

from __future__ import annotations

import pytest

from adapters.wuerstchen import pipelines
from domain.models import GenerationRequest
from domain.params import COMMON_RATIOS, parse_aspect, size_for_aspect
from domain.quality import DEFAULT_PROFILES, SIZE_MULTIPLE
from domain.validation import Limits


def denoise_at(generator, width: int, height: int):
    request = GenerationRequest(prompt="a red cat", width=width, height=height, seed=1, prior_steps=2, decoder_steps=1)
    return generator.pipelines.denoise([request])


async def test_multiples_of_128_are_drawn_at_their_size_and_finer_steps_are_not(tiny_generator, monkeypatch):
    monkeypatch.setattr(pipelines, "model_size", lambda w, h: (w, h))  # no rounding up: the model as it is
    for width, height in [(128, 128), (384, 256), (256, 640)]:
        assert denoise_at(tiny_generator, width, height).shape[1:3] == (height, width)
    for width, height in [(320, 256), (256, 192), (512, 288), (576, 320)]:  # 64 and 32 steps
        with pytest.raises(RuntimeError):
            denoise_at(tiny_generator, width, height)
    assert denoise_at(tiny_generator, 224, 128).shape[1:3] == (128, 256)  # 224 comes out as 256


async def test_every_size_a_profile_picks_is_one_the_model_draws_as_it_is(tiny_generator):
    limits = Limits()
    sizes = set()
    for ratio in COMMON_RATIOS:
        aspect = parse_aspect(ratio, limits)
        for area in (1024 * 1024, 512 * 384):
            width, height = size_for_aspect(aspect, limits, area)
            sizes |= {p.fit_size(width, height, aspect.ratio) for p in DEFAULT_PROFILES.values()}
    assert all(w % SIZE_MULTIPLE == 0 and h % SIZE_MULTIPLE == 0 for w, h in sizes)
    assert {(896, 512), (512, 896), (512, 384)} <= sizes  # 16:9, 9:16 and 4:3 at the fast profile
    for width, height in [(896, 512), (512, 384)]:
        assert pipelines.model_size(width, height) == (width, height)  # drawn at that size, not resized
        assert denoise_at(tiny_generator, width, height).shape[1:3] == (height, width)
