"""PNG encoding of the generated pixels, on a small pool of threads.

Pillow's encoder releases the GIL, so the PNGs of a batch are encoded in parallel, and a group's
while the generation thread denoises the next group of the same call.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from adapters.huggingface.torch_setup import default_threads
from domain.models import GeneratedImage, GenerationRequest


def encode_png(pixels: Any, width: int, height: int) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 array, resized to (width, height) if it is not that size
    (sizes that are not multiples of 128 are generated at the next multiple up)."""
    from PIL import Image

    image = Image.fromarray(pixels, mode="RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


class PngEncoder:
    """Encodes pixels to PNGs on ``threads`` threads (0: the usable cores, at most 16), started on
    first use. ``encode`` turns one (H, W, 3) array into PNG bytes at (width, height)."""

    def __init__(self, threads: int = 0, encode: Callable[[Any, int, int], bytes] = encode_png) -> None:
        self.threads = threads or min(16, default_threads())
        self._encode = encode
        self._pool: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        """Its threads are up (from the first PNG until ``close``)."""
        return self._pool is not None

    def submit(self, requests: Sequence[GenerationRequest], pixels: Any) -> list[Future[GeneratedImage]]:
        """One future image per request, its PNG at the request's size, encoded on the PNG threads."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="png")

        def encode(r: GenerationRequest, array: Any) -> GeneratedImage:
            return GeneratedImage(png=self._encode(array, r.width, r.height), width=r.width, height=r.height)

        return [self._pool.submit(encode, r, array) for r, array in zip(requests, pixels, strict=True)]

    def encode_all(self, requests: Sequence[GenerationRequest], pixels: Any) -> list[GeneratedImage]:
        """The images of ``pixels`` (from ``Pipelines.denoise``), blocking, encoded as ``submit`` does."""
        return [future.result() for future in self.submit(requests, pixels)]

    def close(self) -> None:
        """Let the threads go (a later PNG starts them again)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
