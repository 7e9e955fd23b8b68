#!/usr/bin/env python
"""Where the time of one Würstchen image goes, stage by stage, for CPU tuning.

The real architecture with random weights (``bench/wuerstchen_bench.py``'s builder, the adapter's
own pipelines) makes one image at a time; each model's forward is timed on its own (the two text
encoders, every prior evaluation, every decoder step, the VQGAN decode), then the PNG, and the rest
of the call (the schedulers, the pipelines' Python, the tensor glue) is what is left of the call's
wall time. Several variants (``--variants``) run in the same process one after the other, so they
are compared on the same machine load:

- ``base``: the worker's default settings;
- ``denormal``: ``torch.set_flush_denormal(True)``;
- ``cl``: the prior's and decoder's weights in the channels-last layout;
- ``t1``: one intra-op thread instead of the physical cores;
- ``vqnchw``: the VQGAN in the usual layout (a CPU worker keeps it channels-last).

``--ops`` prints torch.profiler's table of the slowest operators of one call of the first variant.

``--backend openvino`` times the same stages on the OpenVINO backend (``bench/openvino_backend.py``:
the models converted, or read from ``--ov-dir``, as ``bench/wuerstchen_bench.py --backend openvino``
builds them; each stage timed around its OpenVINO call, a new shape's compilation included in the
first call); only the ``base`` variant applies there (``--threads`` sets OpenVINO's threads too).

Example (real size: about 13 GiB of memory; on the shared machine under the bench lock)::

    flock /work/notes/bench.lock python bench/wuerstchen_stages.py --size 512 --prior-steps 8 \
        --decoder-steps 4 --variants base,denormal,cl
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.wuerstchen_bench import REAL, TINY, build_pipelines, cpu_description, log, peak_rss_gib, requests_for

VARIANTS = ("base", "denormal", "cl", "t1", "vqnchw")


def instrument(models: dict[str, Any], times: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """Time every forward of the five models (the VQGAN's ``decode``) into ``times`` (wall) and
    ``cpu`` (the process's CPU seconds, all threads: on a busy shared machine the figure that
    load changes least, with one thread)."""

    def timed(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                times[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - cpu_started)

        return wrapper

    for name, model in models.items():
        if name == "vqgan":
            model.decode = timed(name, model.decode)
        else:
            model.forward = timed(name, model.forward)


def instrument_openvino(pipelines: Any, times: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """``instrument`` for the OpenVINO backend: each stand-in's converted part (``OvPart``), the
    stand-ins being what the diffusers pipelines call."""
    prior_pipe, decoder_pipe = pipelines.prior_pipe, pipelines.decoder_pipe
    stand_ins = {
        "prior_text": prior_pipe.text_encoder,
        "prior": prior_pipe.prior,
        "decoder_text": decoder_pipe.text_encoder,
        "decoder": decoder_pipe.decoder,
        "vqgan": decoder_pipe.vqgan,
    }
    parts = {name: stand_in.part for name, stand_in in stand_ins.items()}
    calls = {name: _TimedCall(part, name, times, cpu) for name, part in parts.items()}
    for name, stand_in in stand_ins.items():
        stand_in.part = calls[name]


class _TimedCall:
    """A callable that times another one under ``name`` (wall and process CPU seconds)."""

    def __init__(self, fn: Any, name: str, wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
        self.fn, self.name, self.wall, self.cpu = fn, name, wall, cpu

    def __call__(self, *args: Any) -> Any:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return self.fn(*args)
        finally:
            self.wall[self.name].append(time.perf_counter() - started)
            self.cpu[self.name].append(time.process_time() - cpu_started)


def apply_variant(variant: str, pipelines: Any, threads: int, backend: str = "torch") -> None:
    import torch

    parts = set(variant.split("+"))
    if backend == "openvino":  # OpenVINO's threads are fixed when its models compile
        if parts != {"base"}:
            raise SystemExit(f"variant {variant!r}: only base applies to the OpenVINO backend")
        return
    torch.set_flush_denormal("denormal" in parts)
    pipelines.set_channels_last("cl" in parts)
    pipelines.set_vqgan_channels_last("vqnchw" not in parts)
    torch.set_num_threads(1 if "t1" in parts else threads)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the variants; returns one row per variant (its fastest timed call), as printed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--prior-steps", type=int, default=8)
    parser.add_argument("--decoder-steps", type=int, default=4)
    parser.add_argument("--prior-guidance", type=float, default=4.0)
    parser.add_argument("--decoder-guidance", type=float, default=0.0)
    parser.add_argument(
        "--variants", default="base", help="comma-separated, each a +-joined set of " + ",".join(VARIANTS)
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed calls per variant after one untimed call (0: the first call is the timed one)",
    )
    parser.add_argument("--ops", action="store_true", help="torch.profiler's operator table of one call")
    parser.add_argument("--backend", default="torch", choices=("torch", "openvino"))
    parser.add_argument("--threads", type=int, default=0, help="threads of torch and OpenVINO (0: physical cores)")
    parser.add_argument("--ov-dir", default="data/compile-cache/openvino-bench", help="openvino: IR and model cache")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for variant in variants:
        if not set(variant.split("+")) <= set(VARIANTS):
            parser.error(f"unknown variant {variant!r}")

    import torch

    from adapters.huggingface.torch_setup import choose_dtype, default_threads
    from adapters.wuerstchen.png import PngEncoder

    device = torch.device("cpu")
    dtype, reason = choose_dtype(args.dtype, device)
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    log(
        f"# stages: {cpu_description()}, torch {torch.__version__}, {dtype} ({reason}), {threads} threads, "
        f"interop {torch.get_num_interop_threads()}, {args.size}px, {args.prior_steps}+{args.decoder_steps} steps, "
        f"backend {args.backend}"
    )
    if args.backend == "openvino" and (args.ops or variants != ["base"]):
        parser.error("the OpenVINO backend takes the base variant only, and no --ops")
    t0 = time.perf_counter()
    times: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    arch = TINY if args.tiny else REAL
    if args.backend == "openvino":
        from bench import openvino_backend

        pipelines, ov_info = openvino_backend.build(arch, dtype, False, args.ov_dir, threads)
        instrument_openvino(pipelines, times, cpu)
    else:
        pipelines, models = build_pipelines(arch, device, dtype)
        instrument(models, times, cpu)
    log(f"built in {time.perf_counter() - t0:.1f}s")
    pngs = PngEncoder()
    requests = requests_for(1, args.size, args)

    def one_call() -> dict[str, float]:
        times.clear()
        cpu.clear()
        started, cpu_started = time.perf_counter(), time.process_time()
        pixels = pipelines.denoise(requests)
        denoised, cpu_denoised = time.perf_counter(), time.process_time()
        pngs.encode_all(requests, pixels)
        ended = time.perf_counter()
        row = {name: sum(values) for name, values in times.items()}
        row["png"] = ended - denoised
        row["other"] = (denoised - started) - sum(sum(v) for v in times.values())
        row["total"] = ended - started
        row["prior_step_median"] = statistics.median(times["prior"])
        row["decoder_step_median"] = statistics.median(times["decoder"])
        row["cpu_total"] = cpu_denoised - cpu_started
        row["cpu_prior_step"] = statistics.median(cpu["prior"])
        row["cpu_decoder_step"] = statistics.median(cpu["decoder"])
        row["cpu_other"] = row["cpu_total"] - sum(sum(v) for v in cpu.values())
        row["_counts"] = {name: len(values) for name, values in times.items()}  # type: ignore[assignment]
        return row

    results: list[dict[str, Any]] = []
    for index, variant in enumerate(variants):
        apply_variant(variant, pipelines, threads, args.backend)
        first = time.perf_counter()
        rows = [one_call()]
        first_s = time.perf_counter() - first
        if args.repeats:
            rows = [one_call() for _ in range(args.repeats)]
        row = min(rows, key=lambda r: r["total"])
        results.append({"variant": variant, "first_s": first_s, **row})
        log(
            f"{variant:>16}: total {row['total']:.2f}s (first {first_s:.1f}s) = "
            + ", ".join(
                f"{k} {v:.2f}s"
                for k, v in row.items()
                if k[0] != "_" and k != "total" and "step" not in k and "cpu" not in k
            )
            + f"; per prior eval {row['prior_step_median']:.3f}s, per decoder step {row['decoder_step_median']:.3f}s"
            + f"; CPU s: denoise {row['cpu_total']:.2f}, prior eval {row['cpu_prior_step']:.3f}, "
            + f"decoder step {row['cpu_decoder_step']:.3f}, other {row['cpu_other']:.2f}"
            + f"; calls {row['_counts']}; all totals {[round(r['total'], 2) for r in rows]}"
        )
        if args.ops and index == 0:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
                pipelines.denoise(requests)
            log(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=60))
    if args.backend == "openvino":
        log(openvino_backend.describe(ov_info))
    log(f"peak RSS {peak_rss_gib():.1f} GiB")
    return results


if __name__ == "__main__":
    main()
