"""Pictures for the safety tests: the sample that the real NudeNet detector flags (made by
``tools/make_flagged_sample.py``, an abstract picture; see there why), and a generator that
draws it for prompts with a marker word and the fake generator's picture otherwise."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from adapters.embedded.generator import FakeGenerator
from domain.models import GeneratedImage, GenerationRequest
from domain.ports import ProgressCallback

FLAGGED_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "nudenet-flagged.png"
MARKER = "flagme"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def flagged_png(width: int = 1024, height: int = 1024) -> bytes:
    return png(Image.open(FLAGGED_SAMPLE).convert("RGB").resize((width, height), Image.Resampling.BICUBIC))


class SampleGenerator(FakeGenerator):
    """The fake generator, except that a prompt containing ``flagme`` gets the flagged sample."""

    async def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GeneratedImage]:
        images = await super().generate(requests, progress)
        return [
            GeneratedImage(png=flagged_png(r.width, r.height), width=r.width, height=r.height)
            if MARKER in r.prompt
            else image
            for r, image in zip(requests, images, strict=True)
        ]
