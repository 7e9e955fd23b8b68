"""The generator contract: every adapter of ``domain.ports.Generator`` must pass these tests.

Adapters: ``fake`` (Pillow drawing) and ``tiny`` (the real Würstchen adapter on a tiny
random-weight model built with the real diffusers classes, once per test session, on the CPU).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from domain.models import GenerationRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from adapters.wuerstchen.tiny import ensure_tiny_model

    # The same folder as tests/wuerstchen use: built once per session.
    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-wuerstchen")


@pytest.fixture(params=["fake", "tiny"])
async def generator(request):
    if request.param == "fake":
        from adapters.embedded.generator import FakeGenerator

        gen = FakeGenerator(max_batch=8)
    else:
        from adapters.wuerstchen.generator import WuerstchenGenerator

        prior, decoder = request.getfixturevalue("tiny_model")
        gen = WuerstchenGenerator(prior, decoder, device="cpu", threads=1, max_batch=4, local_files_only=True)
    await gen.start()
    try:
        yield gen
    finally:
        await gen.stop()


def req(prompt: str = "a red cat on a blue sofa", seed: int = 7, **kw) -> GenerationRequest:
    kw.setdefault("width", 256)
    kw.setdefault("height", 256)
    return GenerationRequest(prompt=prompt, seed=seed, **kw)


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


async def test_one_png_per_request_of_the_requested_size(generator):
    requests = [req(seed=1), req("a dog", seed=2, width=384, height=256), req("a tree", seed=3)]
    images = await generator.generate(requests)
    assert len(images) == len(requests)
    for request, image in zip(requests, images, strict=True):
        assert image.png.startswith(PNG_SIGNATURE)
        assert (image.width, image.height) == (request.width, request.height)
        with Image.open(io.BytesIO(image.png)) as decoded:
            decoded.verify()
        with Image.open(io.BytesIO(image.png)) as decoded:
            assert decoded.format == "PNG"
            assert decoded.size == (request.width, request.height)
            assert decoded.mode == "RGB"


async def test_no_requests_no_images(generator):
    assert await generator.generate([]) == []


async def test_same_request_gives_the_same_image(generator):
    first = await generator.generate([req(seed=42)])
    second = await generator.generate([req(seed=42)])
    assert np.array_equal(pixels(first[0].png), pixels(second[0].png))


async def test_different_seeds_give_different_images(generator):
    a, b = await generator.generate([req(seed=1), req(seed=2)])
    assert np.abs(pixels(a.png) - pixels(b.png)).mean() > 5


async def test_progress_is_reported_on_the_event_loop_with_increasing_steps(generator):
    loop_thread = threading.get_ident()
    calls: list[tuple[int, int, int]] = []

    async def on_step(step: int, total: int) -> None:
        calls.append((step, total, threading.get_ident()))
        await asyncio.sleep(0)

    await generator.generate([req(seed=1), req("a boat", seed=2)], on_step)
    assert calls, "the progress callback was never called"
    steps = [s for s, _, _ in calls]
    totals = {t for _, t, _ in calls}
    assert all(thread == loop_thread for _, _, thread in calls)
    assert steps == sorted(set(steps)), "steps must strictly increase"
    assert len(totals) == 1
    total = totals.pop()
    assert steps[0] >= 1 and steps[-1] == total


async def test_a_plain_function_works_as_progress_callback(generator):
    seen: list[int] = []
    await generator.generate([req()], lambda step, total: seen.append(step))
    assert seen and seen == sorted(seen)


async def test_the_event_loop_keeps_running_during_generation(generator):
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await generator.generate([req(seed=s) for s in range(4)])
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    # A generator that blocks the loop shows one gap as long as the whole generation.
    limit = max(0.1, min(0.5, elapsed / 2))
    assert max(gaps) < limit, f"the event loop stalled for {max(gaps):.3f}s of {elapsed:.3f}s"
    # The ticker ran all along, not only before and after.
    assert len(gaps) >= min(10, int(elapsed / 0.05))


async def test_a_batch_matches_the_same_requests_made_one_by_one(generator):
    requests = [
        req("a red cat", seed=11),
        req("a lighthouse at night, oil painting", seed=22, negative_prompt="blurry"),
        req("the blue dog", seed=33),
    ]
    batch = await generator.generate(requests)
    alone = [(await generator.generate([r]))[0] for r in requests]
    for one, other in zip(batch, alone, strict=True):
        diff = np.abs(pixels(one.png) - pixels(other.png))
        assert diff.mean() < 0.5, f"mean pixel difference {diff.mean():.3f}"
        assert (diff > 8).mean() < 0.001
    # ... and the three images are really different pictures.
    assert np.abs(pixels(batch[0].png) - pixels(batch[1].png)).mean() > 5
