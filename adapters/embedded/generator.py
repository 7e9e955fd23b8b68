"""A fast fake generator drawing a deterministic picture from the prompt and seed with Pillow.

For tests and offline demos: same port as the Würstchen adapter, runs on a worker thread so it
exercises the same off-the-event-loop path, and gives the same bytes for the same request.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageDraw

from domain.models import GeneratedImage, GenerationRequest, GeneratorKind
from domain.ports import ProgressCallback


def draw(request: GenerationRequest) -> GeneratedImage:
    digest = hashlib.sha256(f"{request.prompt}\x00{request.negative_prompt}\x00{request.seed}".encode()).digest()
    rng = random.Random(digest)
    w, h = request.width, request.height
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((w, h))
    image = Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), gradient)
    pen = ImageDraw.Draw(image)
    for _ in range(8 + request.decoder_steps):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(max(4, min(w, h) // 16), max(8, min(w, h) // 4))
        colour = tuple(rng.randrange(256) for _ in range(3))
        pen.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return GeneratedImage(png=buf.getvalue(), width=w, height=h)


class FakeGenerator:
    """The Pillow drawing: a stand-in for the model, never to be taken for its work (every
    result says ``generator_kind=placeholder``, and the bot captions it so)."""

    name = "fake"
    kind = GeneratorKind.PLACEHOLDER

    def __init__(self, max_batch: int = 16, step_delay_s: float = 0.0) -> None:
        self.max_batch = max_batch
        self.step_delay_s = step_delay_s
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator")

    async def stop(self) -> None:
        if self._executor:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GeneratedImage]:
        if self._executor is None:
            await self.start()
        loop = asyncio.get_running_loop()
        total = max((r.decoder_steps for r in requests), default=1)
        if progress:
            for step in range(1, total + 1):
                if self.step_delay_s:
                    await asyncio.sleep(self.step_delay_s)
                outcome = progress(step, total)
                if inspect.isawaitable(outcome):
                    await outcome
        return await loop.run_in_executor(self._executor, lambda: [draw(r) for r in requests])
