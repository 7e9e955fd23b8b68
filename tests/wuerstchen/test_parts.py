"""The parts the Würstchen generator composes, without a model: the generation thread (progress in
order on the event loop, cancellation, a failed start), the shape buckets and the PNG encoder."""

from __future__ import annotations

import asyncio
import io
import threading

import numpy as np
import pytest
from PIL import Image

from adapters.wuerstchen.batching import ShapeBuckets
from adapters.wuerstchen.generation_thread import GenerationThread
from adapters.wuerstchen.png import PngEncoder
from domain.models import GenerationRequest


def req(width: int = 128, height: int = 128, seed: int = 1) -> GenerationRequest:
    return GenerationRequest(prompt="a cat", width=width, height=height, seed=seed)


async def test_work_runs_on_the_thread_and_reports_every_step_in_order():
    thread = GenerationThread("gen-test")
    seen: list[tuple[int, int]] = []

    async def progress(step: int, total: int) -> None:  # an async callback is awaited
        seen.append((step, total))

    def work(on_step, cancel) -> str:
        for _ in range(50):
            on_step()
        return threading.current_thread().name

    try:
        assert await thread.run(work, 50, progress) == "gen-test_0"
        assert await thread.call(lambda: threading.current_thread().name) == "gen-test_0"
    finally:
        await thread.close()
    assert seen == [(s, 50) for s in range(1, 51)]


async def test_cancelling_the_caller_tells_the_work_to_stop():
    thread = GenerationThread()
    stopped = threading.Event()
    started = threading.Event()

    def work(on_step, cancel) -> None:
        started.set()
        while not cancel.wait(0.01):
            on_step()
        stopped.set()

    task = asyncio.create_task(thread.run(work, 10**6, lambda s, t: None))
    assert await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(stopped.wait, 5)
    await thread.close()


async def test_a_failing_progress_callback_does_not_fail_the_work():
    thread = GenerationThread()

    def broken(step: int, total: int) -> None:
        raise RuntimeError("boom")

    def work(on_step, cancel) -> int:
        on_step()
        return 7

    assert await thread.run(work, 1, broken) == 7
    await thread.close()


async def test_a_failed_start_lets_the_thread_go_unless_something_is_loaded():
    thread = GenerationThread("gen-test")
    threads: list[threading.Thread] = []

    def failing() -> None:
        threads.append(threading.current_thread())
        raise ValueError("no model")

    def current() -> None:
        threads.append(threading.current_thread())

    with pytest.raises(ValueError, match="no model"):
        await thread.start(failing, loaded=lambda: False)
    await thread.call(current)
    assert threads[1] is not threads[0]  # a fresh thread
    with pytest.raises(ValueError, match="no model"):
        await thread.start(failing, loaded=lambda: True)
    await thread.call(current)
    assert threads[3] is threads[2] is threads[1]  # something is loaded there: the thread stays
    await thread.close()
    assert all(t.name == "gen-test_0" for t in threads)


def test_shape_buckets_pad_to_the_smallest_warmed_up_batch():
    buckets = ShapeBuckets([(4, 128, 128), (1, 128, 128), (2, 256, 200)])
    assert buckets.batch_limit(128, 128, max_batch=8) == 4
    assert buckets.batch_limit(128, 128, max_batch=3) == 3
    assert buckets.batch_limit(256, 256, max_batch=8) == 2  # 256x200 works at 256x256
    assert buckets.batch_limit(512, 512, max_batch=8) == 8  # not warmed up
    padded = buckets.pad([req(seed=5), req(seed=9)])
    assert [r.seed for r in padded] == [5, 9, 10, 11]
    assert len(buckets.pad([req()])) == 1
    assert len(buckets.pad([req(512, 512)] * 3)) == 3  # a size not warmed up: as it is
    assert len(ShapeBuckets().pad([req()] * 3)) == 3


def test_the_png_encoder_resizes_and_keeps_the_order():
    encoder = PngEncoder(threads=2)
    assert not encoder.running
    pixels = np.stack([np.full((128, 128, 3), value, dtype=np.uint8) for value in (10, 200)])
    try:
        images = encoder.encode_all([req(100, 120), req()], pixels)
        assert encoder.running
    finally:
        encoder.close()
    assert not encoder.running
    assert [(i.width, i.height) for i in images] == [(100, 120), (128, 128)]
    colours = []
    for image in images:
        with Image.open(io.BytesIO(image.png)) as decoded:
            assert decoded.size == (image.width, image.height)
            colours.append(int(np.asarray(decoded).mean()))
    assert colours == [10, 200]
