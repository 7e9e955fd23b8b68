"""Generation with the Würstchen adapter on the tiny model: per-request parameters, batching,
grouping, cancellation, and the decoder's batch fix."""

from __future__ import annotations

import asyncio
import io
import time
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image

from adapters.wuerstchen.batching import plan_groups
from adapters.wuerstchen.generator import WuerstchenGenerator
from adapters.wuerstchen.pipelines import prior_timesteps
from domain.models import GenerationRequest


def req(prompt: str = "a red cat", seed: int = 1, **kw) -> GenerationRequest:
    kw.setdefault("width", 128)
    kw.setdefault("height", 128)
    kw.setdefault("prior_steps", 8)
    kw.setdefault("decoder_steps", 4)
    return GenerationRequest(prompt=prompt, seed=seed, **kw)


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def mean_diff(a, b) -> float:
    return float(np.abs(pixels(a.png) - pixels(b.png)).mean())


async def test_negative_prompt_changes_the_image(tiny_generator):
    plain, negative = await tiny_generator.generate([req(seed=3), req(seed=3, negative_prompt="blurry, low quality")])
    assert mean_diff(plain, negative) > 5


async def test_prompt_changes_the_image(tiny_generator):
    a, b = await tiny_generator.generate([req("a red cat", seed=3), req("a blue dog", seed=3)])
    assert mean_diff(a, b) > 5


async def test_steps_and_guidance_change_the_image(tiny_generator):
    base = req(seed=4)
    images = await tiny_generator.generate(
        [base, base.model_copy(update={"prior_steps": 5}), base.model_copy(update={"prior_guidance": 1.0})]
    )
    assert mean_diff(images[0], images[1]) > 1
    assert mean_diff(images[0], images[2]) > 1


async def test_mixed_requests_are_grouped_and_come_back_in_order(tiny_generator):
    """Sizes and steps differ: the adapter splits the call into groups and keeps the order; each
    image equals the one its request makes alone."""
    requests = [
        req("a", seed=1),
        req("b", seed=2, width=256, height=128),
        req("c", seed=3),
        req("d", seed=4, decoder_steps=3),
    ]
    progress: list[tuple[int, int]] = []
    batch = await tiny_generator.generate(requests, lambda s, t: progress.append((s, t)))
    assert [(i.width, i.height) for i in batch] == [(r.width, r.height) for r in requests]
    total = 8 + 4 + 8 + 4 + 8 + 3  # three groups: {a, c}, {b}, {d}
    assert progress[-1] == (total, total)
    assert [s for s, _ in progress] == list(range(1, total + 1))
    for request, image in zip(requests, batch, strict=True):
        [alone] = await tiny_generator.generate([request])
        assert mean_diff(image, alone) < 0.5


async def test_calls_larger_than_max_batch_are_split(tiny_model):
    prior, decoder = tiny_model
    gen = WuerstchenGenerator(prior, decoder, device="cpu", threads=1, max_batch=2)
    await gen.start()
    try:
        requests = [req(f"prompt {i}", seed=i) for i in range(5)]
        images = await gen.generate(requests)
        assert len(images) == 5
        [third] = await gen.generate([requests[2]])
        assert mean_diff(images[2], third) < 0.5
    finally:
        await gen.stop()


async def test_decoder_guidance_with_per_request_negative_prompts(tiny_generator):
    """Guidance in the decoder too (its classifier-free path), with a negative prompt per request."""
    requests = [
        req("a", seed=1, decoder_guidance=2.0, negative_prompt="dark"),
        req("b", seed=2, decoder_guidance=2.0, negative_prompt=""),
    ]
    batch = await tiny_generator.generate(requests)
    alone = [(await tiny_generator.generate([r]))[0] for r in requests]
    for one, other in zip(batch, alone, strict=True):
        assert mean_diff(one, other) < 0.5


async def test_a_size_that_is_not_a_multiple_of_128_is_still_delivered(tiny_generator):
    [image] = await tiny_generator.generate([req(width=200, height=136)])
    with Image.open(io.BytesIO(image.png)) as decoded:
        assert decoded.size == (200, 136)


async def test_cancelling_stops_the_generation_thread(tiny_generator):
    """A cancelled call stops at its next step, so the next call does not wait for it."""
    # About a minute of work if it ran to the end.
    slow = [req(seed=s, width=512, height=512, prior_steps=500, decoder_steps=500) for s in range(4)]
    task = asyncio.create_task(tiny_generator.generate(slow))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.perf_counter()
    [image] = await tiny_generator.generate([req()])
    assert image.png
    assert time.perf_counter() - started < 5


async def test_progress_callback_errors_do_not_fail_the_generation(tiny_generator):
    def broken(step: int, total: int) -> None:
        raise RuntimeError("boom")

    [image] = await tiny_generator.generate([req()], broken)
    assert image.png


async def test_start_is_idempotent_and_generate_starts_on_demand(tiny_model):
    prior, decoder = tiny_model
    gen = WuerstchenGenerator(prior, decoder, device="cpu", threads=1)
    try:
        await asyncio.gather(gen.start(), gen.start())
        pipelines = gen.pipelines
        assert pipelines is not None
        await gen.start()
        assert gen.pipelines is pipelines
    finally:
        await gen.stop()
    assert not gen.started
    [image] = await gen.generate([req()])  # starts again on demand
    assert image.png
    await gen.stop()


def test_prior_timesteps():
    from diffusers.pipelines.deprecated.wuerstchen import DEFAULT_STAGE_C_TIMESTEPS

    assert prior_timesteps(29) == pytest.approx([float(t) for t in DEFAULT_STAGE_C_TIMESTEPS])
    for steps in (1, 2, 3, 8, 16, 40):
        ts = prior_timesteps(steps)
        assert len(ts) == steps + 1  # the pipeline evaluates the model on all but the last
        assert ts[0] == 1.0 and ts[-1] == 0.0
        assert all(a > b for a, b in pairwise(ts))


def test_plan_groups_keeps_order_and_limits():
    requests = [req(seed=i, width=128 if i % 2 else 256) for i in range(7)]
    groups = plan_groups(requests, max_batch=2)
    assert sorted(i for g in groups for i in g.indices) == list(range(7))
    for group in groups:
        assert len(group.requests) <= 2
        assert len({(r.width, r.height) for r in group.requests}) == 1
        assert group.indices == sorted(group.indices)


async def test_the_decoder_fix_batches_different_prompts(tiny_generator):
    """The stock WuerstchenDecoderPipeline repeats a list of B prompts B times; the fixed one
    gives one text embedding per image."""
    import torch

    decoder = tiny_generator.pipelines.decoder_pipe
    embeddings, _ = decoder.encode_prompt(["a", "b", "c"], torch.device("cpu"), 3, False)
    assert embeddings.shape[0] == 3
    single, _ = decoder.encode_prompt("a", torch.device("cpu"), 3, False)
    assert single.shape[0] == 3
    assert torch.equal(embeddings[0], single[0])


@pytest.mark.slow
async def test_compiled_generator_warms_up_pads_batches_and_matches_eager(tiny_model, tmp_path):
    """The compile path on the CPU with the 'eager' backend (Dynamo tracing without Inductor's
    minutes of C++ compilation): warm-up over the given shapes, batches padded up to a warmed-up
    size, the same pictures as without compilation, and the compile cache folder is set up."""
    prior, decoder = tiny_model
    compiled = WuerstchenGenerator(
        prior,
        decoder,
        device="cpu",
        threads=1,
        max_batch=8,
        compile=True,
        compile_backend="eager",
        compile_cache_dir=tmp_path / "compile-cache",
        warmup=[(2, 128, 128)],
    )
    plain = WuerstchenGenerator(prior, decoder, device="cpu", threads=1)
    await compiled.start()
    await plain.start()
    try:
        assert compiled.warmup_seconds > 0
        assert (tmp_path / "compile-cache").is_dir()
        assert compiled.batch_limit(128, 128) == 2 and compiled.batch_limit(256, 256) == 8
        one = [req("a cat", seed=9)]
        assert len(compiled.padded_batch(one)) == 2
        three = [req(f"p{i}", seed=i) for i in range(3)]
        progress: list[int] = []
        images = await compiled.generate(three, lambda s, t: progress.append(t))
        assert progress[-1] == 2 * (8 + 4)  # two pipeline calls: [2] + [1 padded to 2]
        for request, image in zip(three, images, strict=True):
            [expected] = await plain.generate([request])
            assert mean_diff(image, expected) < 0.5
    finally:
        await compiled.stop()
        await plain.stop()


def test_parse_warmup():
    from adapters.wuerstchen.batching import parse_warmup

    assert parse_warmup("1x1024x1024, 8x1024x1024,4x512x768") == [(1, 1024, 1024), (8, 1024, 1024), (4, 512, 768)]
    assert parse_warmup("") == []
    with pytest.raises(ValueError):
        parse_warmup("8x1024")


async def test_the_tiny_generator_builds_its_model_on_start(tmp_path):
    gen = WuerstchenGenerator.tiny(tmp_path / "tiny", device="cpu", threads=1)
    assert gen.name == "tiny-wuerstchen"
    await gen.start()
    try:
        assert (tmp_path / "tiny" / "decoder" / "vqgan").is_dir()
        [image] = await gen.generate([req()])
        assert image.png
    finally:
        await gen.stop()


async def test_channels_last_layout_computes_the_same_function(tiny_model):
    """The channels-last layout (the default on GPUs) changes memory order, not results: one
    forward of the prior and of the decoder agrees to float32 rounding, and whole images (where
    29 guided steps amplify rounding) stay far closer than another seed's image."""
    import torch

    from adapters.wuerstchen.pipelines import set_channels_last

    prior, decoder = tiny_model
    requests = [req("a red cat", seed=5), req("a blue dog", seed=6)]
    images = {}
    for channels_last in (False, True):
        gen = WuerstchenGenerator(prior, decoder, device="cpu", threads=1, channels_last=channels_last)
        await gen.start()
        try:
            # weights whose layouts differ (a channel or pixel axis of 1 is the same in both)
            conv_weights = [
                m.weight
                for m in gen.pipelines.decoder_pipe.decoder.modules()
                if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1 and m.weight.shape[-2:] != (1, 1)
            ]
            assert conv_weights
            assert all(w.is_contiguous(memory_format=torch.channels_last) == channels_last for w in conv_weights)
            images[channels_last] = await gen.generate([*requests, req("a red cat", seed=7)])
            if channels_last:
                p, d = gen.pipelines.prior_pipe.prior, gen.pipelines.decoder_pipe.decoder
                g = torch.Generator().manual_seed(0)
                r = torch.rand(2, generator=g)
                prior_in = (
                    torch.randn(2, p.config.c_in, 3, 3, generator=g),
                    r,
                    torch.randn(2, 77, p.config.c_cond, generator=g),
                )
                decoder_in = (
                    torch.randn(2, 4, 32, 32, generator=g),
                    r,
                    torch.randn(2, p.config.c_in, 3, 3, generator=g),
                    torch.randn(2, 77, d.config.clip_embd, generator=g),
                )
                with torch.inference_mode():
                    outs = [(p(*prior_in), d(*decoder_in))]
                    set_channels_last(False, p, d)
                    outs.append((p(*prior_in), d(*decoder_in)))
                for last, plain in zip(*outs, strict=True):
                    assert float((last - plain).norm() / plain.norm()) < 1e-4
        finally:
            await gen.stop()
    other_seed = mean_diff(images[False][0], images[False][2])
    assert other_seed > 10
    for plain, last in zip(images[False], images[True], strict=True):
        assert mean_diff(plain, last) < other_seed / 5


async def test_a_cpu_worker_keeps_the_vqgan_channels_last_with_the_same_pictures(tiny_model):
    """On a CPU, ``auto`` keeps the VQGAN (full-size convolutions, twice as fast channels-last in
    oneDNN) channels-last and the prior and decoder in the usual layout; GENERATOR_CHANNELS_LAST=off
    keeps it in the usual layout, and the pictures agree (the VQGAN runs once, after all the
    steps: only its own rounding differs)."""
    import torch

    prior, decoder = tiny_model
    requests = [req("a red cat", seed=5), req("a blue dog", seed=6)]
    images = {}
    for setting in (None, False):
        gen = WuerstchenGenerator(prior, decoder, device="cpu", threads=1, channels_last=setting)
        await gen.start()
        try:
            pipes = gen.pipelines

            def layouts(model) -> set[bool]:
                return {
                    m.weight.is_contiguous(memory_format=torch.channels_last)
                    for m in model.modules()
                    if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1 and m.weight.shape[-2:] != (1, 1)
                }

            assert layouts(pipes.decoder_pipe.vqgan) == {setting is None}
            assert layouts(pipes.decoder_pipe.decoder) == {False}
            images[setting] = await gen.generate(requests)
        finally:
            await gen.stop()
    other_seed = mean_diff(images[False][0], images[False][1])
    for plain, last in zip(images[False], images[None], strict=True):
        assert mean_diff(plain, last) < min(1.0, other_seed / 10)


def test_channels_last_defaults_to_gpus_only(tiny_model):
    prior, decoder = tiny_model
    assert WuerstchenGenerator(prior, decoder).channels_last is None  # auto: decided at start
    assert WuerstchenGenerator(prior, decoder, png_threads=3).png_threads == 3
    assert WuerstchenGenerator(prior, decoder).png_threads >= 1


async def test_pngs_are_encoded_on_their_own_threads_while_the_next_group_denoises(tiny_model):
    """The generation thread only denoises: each group's PNGs are made on the PNG threads, the
    first group's while the second group is denoised (each PNG waits until the second group's
    steps are reported, which never happens if PNGs hold up the generation thread), and the
    order is kept."""
    import threading

    from adapters.wuerstchen.png import PngEncoder, encode_png

    prior, decoder = tiny_model
    first_group_steps = 8 + 4
    second_group_denoising = threading.Event()
    pngs: list[tuple[str, bool]] = []  # (thread, whether the second group was being denoised)

    def traced_encode(array, width, height):
        pngs.append((threading.current_thread().name, second_group_denoising.wait(10)))
        return encode_png(array, width, height)

    def progress(step: int, total: int) -> None:
        if step > first_group_steps:
            second_group_denoising.set()

    encoder = PngEncoder(threads=2, encode=traced_encode)
    gen = WuerstchenGenerator(prior, decoder, device="cpu", threads=1, max_batch=2, png_encoder=encoder)
    assert gen.png_threads == 2
    await gen.start()
    try:
        requests = [req(f"prompt {i}", seed=i) for i in range(3)]  # groups of 2 and 1
        images = await gen.generate(requests, progress)
        assert encoder.running
        [alone] = await gen.generate([requests[2]])
    finally:
        await gen.stop()
    assert len(pngs) == 4
    assert all(name.startswith("png") for name, _ in pngs)
    assert all(overlapped for _, overlapped in pngs)
    assert [(i.width, i.height) for i in images] == [(128, 128)] * 3
    assert mean_diff(images[2], alone) < 0.5  # the order is kept
    assert not encoder.running  # stop() let the PNG threads go


RESTART_PROBE = """
import asyncio, json, sys
from adapters.wuerstchen.generator import WuerstchenGenerator

async def main():
    gen = WuerstchenGenerator(sys.argv[1], sys.argv[2], device="cpu", threads=1, compile=True,
                              compile_cache_dir=sys.argv[3], warmup=[(1, 128, 128)])
    await gen.start()
    from torch._dynamo.utils import counters
    print(json.dumps(dict(counters["inductor"])))
    await gen.stop()

asyncio.run(main())
"""


@pytest.mark.slow
def test_a_restart_reuses_the_compile_cache(tiny_model, tmp_path):
    """Two worker processes one after the other with the same COMPILE_CACHE_DIR, Inductor on the
    CPU: the first compiles the prior and the decoder (cache misses) and saves its artefacts, the
    second finds every compiled graph in the cache (hits, no misses)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from adapters.wuerstchen.compilation import COMPILE_ARTIFACTS

    prior, decoder = tiny_model
    cache = tmp_path / "compile-cache"
    root = Path(__file__).resolve().parents[2]

    def start_worker(n: int) -> dict:
        # a fresh default cache per process: only COMPILE_CACHE_DIR can carry the compiled graphs over
        env = {**os.environ, "PYTHONPATH": str(root), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / f"default-{n}")}
        done = subprocess.run(
            [sys.executable, "-c", RESTART_PROBE, str(prior), str(decoder), str(cache)],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = start_worker(1)
    assert first.get("fxgraph_cache_miss", 0) >= 2 and first.get("fxgraph_cache_hit", 0) == 0
    assert (cache / COMPILE_ARTIFACTS).is_file() and any((cache / "inductor").iterdir())
    second = start_worker(2)
    assert second.get("fxgraph_cache_miss", 0) == 0
    assert second.get("fxgraph_cache_hit", 0) >= first["fxgraph_cache_miss"]
