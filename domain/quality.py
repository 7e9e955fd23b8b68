"""Quality profiles: how many diffusion steps and how large an image a job gets."""

from __future__ import annotations

from dataclasses import dataclass

from domain.models import GenerationRequest, Job, Quality
from domain.params import closest_size

# Würstchen's sizes are multiples of 128: the prior works at ceil(side / 42.67) latent pixels and
# the decoder at int(10.67 x that), which the DiffNeXt (a pixel unshuffle by 2, then three
# halvings) needs divisible by 16, and the VQGAN makes 4 pixels of each. Only a prior latent that
# is a multiple of 3 gives that: 128 -> 3 -> 32 -> 128 px; 64 -> 2 -> 21 fails, 192 -> 5 -> 53
# fails, 224 -> 6 -> 64 gives 256 px (tried on the tiny model: tests/wuerstchen/test_sizes.py).
SIZE_MULTIPLE = 128


@dataclass(frozen=True)
class QualityProfile:
    """Steps and size of a quality level. ``max_side``: the side of the square whose area is the
    profile's pixel budget (512: about 512 x 512 pixels); a picture of another shape keeps its
    shape within 5 % and gets about as many pixels, so its longer side may be longer (16:9 at
    512 is 896 x 512: 7:4, the nearest shape in steps of 128)."""

    name: str
    prior_steps: int
    decoder_steps: int
    max_side: int
    prior_guidance: float = 4.0
    decoder_guidance: float = 0.0

    def __post_init__(self) -> None:
        # A profile comes from QUALITY_PROFILES too: a bad one stops the start, not every job.
        if self.prior_steps < 1 or self.decoder_steps < 1:
            raise ValueError(f"quality profile {self.name!r}: prior and decoder steps must be at least 1")
        if self.max_side < SIZE_MULTIPLE:
            raise ValueError(f"quality profile {self.name!r}: max_side must be at least {SIZE_MULTIPLE}")
        if self.prior_guidance < 0 or self.decoder_guidance < 0:
            raise ValueError(f"quality profile {self.name!r}: guidance must not be negative")

    def fit_size(self, width: int, height: int, aspect: float = 0.0, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
        """The size a job of ``width`` x ``height`` is generated at: as asked when it is within
        the pixel budget; else the multiples of ``multiple`` no larger than asked that keep the
        shape within 5 % with about ``max_side`` squared pixels (``params.closest_size``). The
        shape kept is ``aspect`` (the ratio the user asked for) when given, else the size's own:
        steps of 128 only come near 16:9, and two such steps could add up to more than 5 %."""
        budget = self.max_side * self.max_side
        if width * height <= budget:
            return width, height
        widths = list(range(multiple, width + 1, multiple))
        heights = list(range(multiple, height + 1, multiple))
        return closest_size(aspect or width / height, budget, widths, heights) or (width, height)

    def request(self, job: Job) -> GenerationRequest:
        width, height = self.fit_size(job.width, job.height, job.aspect)
        return GenerationRequest(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            width=width,
            height=height,
            seed=job.seed,
            prior_steps=self.prior_steps,
            decoder_steps=self.decoder_steps,
            prior_guidance=self.prior_guidance,
            decoder_guidance=self.decoder_guidance,
        )


# The model's own defaults are the "quality" profile (29 prior evaluations, 12 decoder steps).
DEFAULT_PROFILES: dict[str, QualityProfile] = {
    Quality.QUALITY: QualityProfile("quality", prior_steps=29, decoder_steps=12, max_side=1536),
    Quality.BALANCED: QualityProfile("balanced", prior_steps=16, decoder_steps=8, max_side=1024),
    Quality.FAST: QualityProfile("fast", prior_steps=8, decoder_steps=4, max_side=512),
}

# The order from best to fastest; the adaptive policy moves along it.
LADDER: tuple[str, ...] = (Quality.QUALITY, Quality.BALANCED, Quality.FAST)
