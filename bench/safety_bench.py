"""Benchmark of content safety on this machine: the NudeNet image check at 1024x1024 (seconds
per picture, target at most 0.3 s on the 2-core CPU) and the prompt filter (ms per prompt).

    python -m bench.safety_bench                 # 12 pictures per setting
    python -m bench.safety_bench --images 30 --threads 0,1,2

What is timed, side by side in one run:
  - ``NudeNetCheck.check`` as the worker calls it (PNG decode + NudeNet's pre-processing + the ONNX
    model on onnxruntime's CPU provider + NudeNet's post-processing, on the check's own thread),
    one picture per call, for each ``--threads`` value (0: onnxruntime's default), after one
    warm-up call; mean, p50 and p95; and once with onnxruntime's busy-waiting threads (its
    default, which the adapter turns off);
  - the parts of one check: decode, the model run, post-processing (the same library functions);
  - the prompt filter on the shipped lists: a short prompt, a 1000-character one, one with evasions.
Pictures: the fake generator's (clean) and the flagged sample, both at 1024x1024.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pictures(n: int) -> list[bytes]:
    from adapters.embedded.generator import draw
    from domain.models import GenerationRequest
    from tests.safety.helpers import flagged_png

    out = [draw(GenerationRequest(prompt=f"landscape {i}", width=1024, height=1024, seed=i)).png for i in range(n - 1)]
    return [*out, flagged_png(1024, 1024)]


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"mean {statistics.mean(samples):.3f} s  p50 {statistics.median(samples):.3f} s  p95 {p95:.3f} s"


async def time_check(threads: int, pngs: list[bytes], spinning: bool = False) -> list[float]:
    from adapters.nudenet.detector import NudeNetCheck

    check = NudeNetCheck(threads=threads, spinning=spinning)
    await check.start()
    try:
        await check.check(pngs[:1])  # warm-up
        samples = []
        for png in pngs:
            started = time.perf_counter()
            await check.check([png])
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        await check.stop()


def parts(pngs: list[bytes]) -> dict[str, float]:
    import nudenet.nudenet as module

    from adapters.nudenet.detector import _decode, _detector

    model = _detector(0)
    times: dict[str, list[float]] = {"decode": [], "preprocess": [], "model": [], "postprocess": []}
    for png in pngs:
        t0 = time.perf_counter()
        mat = _decode(png)
        t1 = time.perf_counter()
        blob, x_ratio, y_ratio, x_pad, y_pad, w, h = module._read_image(mat, 320)
        t2 = time.perf_counter()
        outputs = model.onnx_session.run(None, {model.input_name: blob})
        t3 = time.perf_counter()
        module._postprocess(outputs, x_pad, y_pad, x_ratio, y_ratio, w, h, 320, 320)
        t4 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[key].append(value)
    return {key: statistics.median(values) for key, values in times.items()}


def filter_figures() -> dict[str, float]:
    from config.safety import prompt_filter
    from config.settings import Settings

    started = time.perf_counter()
    defaults: dict[str, Any] = {"_env_file": None}  # the defaults, whatever .env says
    f = prompt_filter(Settings(**defaults))
    load = time.perf_counter() - started
    assert f is not None
    prompts = {
        "short (en)": "a mountain landscape at dawn",
        "short (ru)": "закат над океаном, тёплые цвета",
        "evasion": "a picture of s.e.x with p0rn and sеx",
        "1000 chars, all different words": " ".join(f"w{i}ord{i * 7} lake{i}" for i in range(200))[:1000],
    }
    out = {"load lists (s)": load}
    for name, prompt in prompts.items():
        f.check(prompt)  # the first call fills the stem cache
        runs = 20
        started = time.perf_counter()
        for i in range(runs):
            f.check(prompt + f" x{i}")
        out[name] = (time.perf_counter() - started) / runs * 1000
    return out


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="NudeNet image check and prompt filter timings")
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--threads", default="0,2", help="onnxruntime intra-op threads to compare (0: default)")
    args = p.parse_args(argv)
    import onnxruntime

    pngs = pictures(max(2, args.images))
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"load average {os.getloadavg()[0]:.1f}; onnxruntime {onnxruntime.__version__}"
    )
    print(f"NudeNet check at 1024x1024, {len(pngs)} pictures, one per call (target <= 0.3 s):")
    await time_check(0, pngs[:4])  # a first, untimed pass: the first session runs slow
    samples = await time_check(0, pngs, spinning=True)
    print(f"  threads=default, spinning on (onnxruntime's default): {summary(samples)}")
    for threads in (int(t) for t in args.threads.split(",")):
        samples = await time_check(threads, pngs)
        print(f"  threads={threads or 'default'}, spinning off (the adapter's): {summary(samples)}")
    print("  parts (median): " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in parts(pngs).items()))
    print("prompt filter on the shipped lists:")
    for name, value in filter_figures().items():
        unit = "s" if name.endswith("(s)") else "ms/prompt"
        print(f"  {name}: {value:.3f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
