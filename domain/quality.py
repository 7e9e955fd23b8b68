"""Quality profiles: how many diffusion steps and how large an image a job gets."""

from __future__ import annotations

from dataclasses import dataclass

from domain.models import GenerationRequest, Job, Quality


@dataclass(frozen=True)
class QualityProfile:
    name: str
    prior_steps: int
    decoder_steps: int
    max_side: int
    prior_guidance: float = 4.0
    decoder_guidance: float = 0.0

    def fit_size(self, width: int, height: int, multiple: int = 128) -> tuple[int, int]:
        """Scale (width, height) down so the longer side is at most ``max_side``, keeping the
        aspect ratio as well as multiples of ``multiple`` allow."""
        longer = max(width, height)
        if longer <= self.max_side:
            return width, height
        scale = self.max_side / longer
        w = max(multiple, int(width * scale) // multiple * multiple)
        h = max(multiple, int(height * scale) // multiple * multiple)
        return w, h

    def request(self, job: Job) -> GenerationRequest:
        width, height = self.fit_size(job.width, job.height)
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
