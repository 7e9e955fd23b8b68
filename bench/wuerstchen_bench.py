#!/usr/bin/env python
"""Benchmark of the Würstchen v2 generator at the real architecture sizes, with random weights.

The speed of a diffusion model does not depend on its weight values, so the real architecture is
built here from its configurations (nothing is downloaded): the prior (c=1536, c_cond=1280,
depth=32, nhead=24: 994M parameters), the DiffNeXt decoder (diffusers defaults: 1055M), the CLIP
ViT-bigG (693M) and ViT-H (353M) text encoders and the Paella VQGAN (18M). The pipelines are the
adapter's own (``adapters.wuerstchen.pipelines``: fused attention, the batch-fixed decoder, one
seed per image; the PNGs on ``adapters.wuerstchen.png``'s threads), so the figures are what a
worker gets.

For every size, batch size and mode (eager, compiled) it prints seconds per image and images per
second (median of ``--repeats`` timed calls after ``--warmup`` calls; CUDA is synchronised), the
first call's time (for ``compiled``: the compilation), peak GPU memory, the process's peak RSS, and
the FLOPs per image
counted with ``torch.utils.flop_counter.FlopCounterMode`` (on the ``meta`` device: exact shapes,
no compute, so it works on any machine), from which it derives the achieved TFLOP/s.

The dtype is the worker's own choice unless ``--dtype`` names one: ``auto`` is bf16 on a GPU and on a
CPU with native bf16 (AMX or AVX512-BF16), fp32 on other CPUs; the header prints the CPU's model,
its bf16-relevant flags and the reason for the dtype. On a CPU the default mode is ``eager``, as a
worker runs by default (``GENERATOR_COMPILE`` is off).

Examples::

    python bench/wuerstchen_bench.py --tiny                    # CPU, seconds
    python bench/wuerstchen_bench.py                           # GPU: bf16, 1024 and 512, batches 1..16
    python bench/wuerstchen_bench.py --sizes 1024 --batches 1,8,16 --modes eager
    python bench/wuerstchen_bench.py --modes compiled --compile-mode max-autotune-no-cudagraphs
    python bench/wuerstchen_bench.py --step-only --device cpu --sizes 512   # one step of each model
    python bench/wuerstchen_bench.py --flops-only --sizes 1024,512

Compiling costs about a minute or two per new (batch, size) shape on a GPU; ``--compile-batches``
and ``--compile-sizes`` keep that bounded, ``--compile-cache-dir`` keeps the results for the next
run, and ``--max-seconds`` stops starting new measurements once the time is up (what was measured
is already printed, and written to ``--json`` as it goes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded, nothing is asked

from adapters.wuerstchen import tiny
from domain.models import GenerationRequest


@dataclass(frozen=True)
class Arch:
    name: str
    prior: dict[str, Any]
    decoder: dict[str, Any]
    prior_text: dict[str, Any]
    decoder_text: dict[str, Any]
    vqgan: dict[str, Any]
    vocab_size: int
    expected_params_m: dict[str, float] = field(default_factory=dict)


REAL = Arch(
    name="real",
    prior=dict(c_in=16, c=1536, c_cond=1280, c_r=64, depth=32, nhead=24, dropout=0.1),
    decoder={},  # WuerstchenDiffNeXt defaults are the hub decoder's configuration
    prior_text=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20),
    decoder_text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
    vqgan={},  # PaellaVQModel defaults
    vocab_size=49408,
    expected_params_m={"prior": 993.6, "decoder": 1055.4, "prior_text": 693.0, "decoder_text": 353.0, "vqgan": 18.4},
)

TINY = Arch(
    name="tiny",
    prior=tiny.TINY_PRIOR,
    decoder=tiny.TINY_DECODER,
    prior_text=tiny.TINY_PRIOR_TEXT,
    decoder_text=tiny.TINY_DECODER_TEXT,
    vqgan=tiny.TINY_VQGAN,
    vocab_size=len(tiny.tiny_vocab_and_merges()[0]),
)


MODES = ("eager", "eager-cl", "compiled", "compiled-cl")


def log(message: str) -> None:
    print(message, flush=True)


def parse_ints(text: str) -> list[int]:
    """``1,2,4`` or ``1-16`` or ``1-4,8,16``."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
            values.extend(range(lo, hi + 1))
        else:
            values.append(int(part))
    return list(dict.fromkeys(values))


# --------------------------------------------------------------------------- building


def build_models(arch: Arch, device: Any, dtype: Any) -> dict[str, Any]:
    """The five models of ``arch`` with random weights, created directly on ``device``."""
    import torch
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
    from transformers import CLIPTextModel

    from adapters.wuerstchen.model_files import skip_decoder_weight_init

    tok = tiny.build_tokenizer()
    ids = dict(bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id)
    # PyTorch's default initialisation; the decoder's own is quadratic in its depth (minutes on a CPU).
    with torch.device(device), skip_decoder_weight_init():
        models = {
            "prior_text": CLIPTextModel(tiny.text_encoder_config(arch.prior_text, arch.vocab_size, **ids)),
            "prior": WuerstchenPrior(**arch.prior),
            "decoder_text": CLIPTextModel(tiny.text_encoder_config(arch.decoder_text, arch.vocab_size, **ids)),
            "decoder": WuerstchenDiffNeXt(**arch.decoder),
            "vqgan": PaellaVQModel(**arch.vqgan),
        }
    for name, model in models.items():
        # torch's own .to(): diffusers' override warns about float32 modules these models do not have
        models[name] = torch.nn.Module.to(model, dtype=dtype).eval().requires_grad_(False)
    return models


def param_counts(models: dict[str, Any]) -> dict[str, float]:
    return {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in models.items()}


def build_pipelines(arch: Arch, device: Any, dtype: Any):
    """The adapter's pipelines on the models of ``arch`` (random weights), and the models."""
    from diffusers import DDPMWuerstchenScheduler

    from adapters.wuerstchen.pipelines import make_pipelines

    models = build_models(arch, device, dtype)
    tokenizer = tiny.build_tokenizer()
    pipelines = make_pipelines(
        prior_tokenizer=tokenizer,
        prior_text_encoder=models["prior_text"],
        prior=models["prior"],
        prior_scheduler=DDPMWuerstchenScheduler(),
        decoder_tokenizer=tokenizer,
        decoder_text_encoder=models["decoder_text"],
        decoder=models["decoder"],
        decoder_scheduler=DDPMWuerstchenScheduler(),
        vqgan=models["vqgan"],
        device=device,
    )
    return pipelines, models


# --------------------------------------------------------------------------- FLOPs


def latent_sizes(width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(prior latent h, w) and (decoder latent h, w), as the pipelines compute them."""
    from adapters.wuerstchen.pipelines import DECODER_DEFAULTS, PRIOR_DEFAULTS

    ph = math.ceil(height / PRIOR_DEFAULTS["resolution_multiple"])
    pw = math.ceil(width / PRIOR_DEFAULTS["resolution_multiple"])
    scale = DECODER_DEFAULTS["latent_dim_scale"]
    return (ph, pw), (int(ph * scale), int(pw * scale))


_META_MODELS: dict[str, dict[str, Any]] = {}


def count_flops(
    arch: Arch,
    width: int,
    height: int,
    prior_evals: int,
    decoder_steps: int,
    prior_guidance: bool = True,
    decoder_guidance: bool = False,
) -> dict[str, float]:
    """FLOPs of one image (batch 1), per part and in total, counted with FlopCounterMode on the
    meta device: one forward of each model, times the number of its evaluations."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from adapters.wuerstchen.pipelines import use_fused_attention

    if arch.name not in _META_MODELS:
        models = build_models(arch, "meta", torch.float32)
        use_fused_attention(models["prior"], models["decoder"])
        _META_MODELS[arch.name] = models
    m = _META_MODELS[arch.name]
    (ph, pw), (dh, dw) = latent_sizes(width, height)
    pb = 2 if prior_guidance else 1
    db = 2 if decoder_guidance else 1
    c_in = m["prior"].config.c_in
    out: dict[str, float] = {}

    def flops(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return float(counter.get_total_flops())

    with torch.inference_mode(), torch.device("meta"):
        tokens = tiny.MAX_TOKENS
        out["prior_text"] = flops(lambda: m["prior_text"](torch.zeros(pb, tokens, dtype=torch.long)))
        c = torch.empty(pb, tokens, m["prior_text"].config.hidden_size)
        out["prior"] = prior_evals * flops(lambda: m["prior"](torch.empty(pb, c_in, ph, pw), torch.rand(pb), c))
        out["decoder_text"] = flops(lambda: m["decoder_text"](torch.zeros(1, tokens, dtype=torch.long)))
        clip = torch.empty(db, tokens, m["decoder_text"].config.hidden_size)
        out["decoder"] = decoder_steps * flops(
            lambda: m["decoder"](torch.empty(db, 4, dh, dw), torch.rand(db), torch.empty(db, c_in, ph, pw), clip)
        )
        out["vqgan"] = flops(lambda: m["vqgan"].decode(torch.empty(1, 4, dh, dw)))
    out["total"] = sum(out.values())
    return out


# --------------------------------------------------------------------------- timing


def sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)


def requests_for(batch: int, size: int, args: argparse.Namespace) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            prompt=f"benchmark prompt number {i}: a photo of a red cat on a blue sofa",
            negative_prompt="blurry" if i % 2 else "",
            width=size,
            height=size,
            seed=1000 + i,
            prior_steps=args.prior_steps,
            decoder_steps=args.decoder_steps,
            prior_guidance=args.prior_guidance,
            decoder_guidance=args.decoder_guidance,
        )
        for i in range(batch)
    ]


def time_call(pipelines, requests, device) -> tuple[float, Any]:
    sync(device)
    started = time.perf_counter()
    pixels = pipelines.denoise(requests)
    sync(device)
    return time.perf_counter() - started, pixels


def measure(pipelines, pngs, mode: str, size: int, batch: int, args, device, flops: dict[int, float]) -> dict:
    import torch

    requests = requests_for(batch, size, args)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first, pixels = time_call(pipelines, requests, device)
    for _ in range(max(0, args.warmup - 1)):
        time_call(pipelines, requests, device)
    # --warmup 0: the first call is the first timed one (a slow CPU profile, minutes per call)
    times = [] if args.warmup else [first]
    times += [time_call(pipelines, requests, device)[0] for _ in range(max(1, args.repeats) - len(times))]
    seconds = statistics.median(times)
    png_started = time.perf_counter()
    pngs.encode_all(requests, pixels)  # the batch's PNGs on the PNG threads, as a worker makes them
    png_s = (time.perf_counter() - png_started) / batch
    row = {
        "mode": mode,
        "size": size,
        "batch": batch,
        "s_per_call": seconds,
        "s_per_image": seconds / batch,
        "images_per_s": batch / seconds,
        "first_call_s": first,
        "runs_s": times,
        "png_s_per_image": png_s,  # wall time of the batch's PNGs over the batch, in parallel
        "png_threads": pngs.threads,
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "peak_rss_gib": peak_rss_gib(),
    }
    if size in flops:
        row["tflops_per_s"] = flops[size] * batch / seconds / 1e12
    return row


def peak_rss_gib() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_description() -> dict[str, Any]:
    """The CPU's model, threads and the flags that decide bf16's speed (torch's detection)."""
    from adapters.huggingface.torch_setup import cpu_flags, cpu_name

    flags = cpu_flags()
    wanted = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512_f", "avx512_vnni", "avx_vnni", "avx2", "fma3")
    return {"cpu": cpu_name(), "cpu_flags": " ".join(f for f in wanted if f in flags) or "none of " + ",".join(wanted)}


def flops_text(value: float, unit: str = "FLOP") -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def format_row(row: dict) -> str:
    text = (
        f"{row['mode']:>11} {row['size']:>5}x{row['size']:<5} batch {row['batch']:>2}: "
        f"{row['s_per_image']:8.3f} s/image {row['images_per_s']:8.2f} images/s "
        f"(call {row['s_per_call']:.3f}s, first {row['first_call_s']:.1f}s, png {row['png_s_per_image'] * 1000:.0f} ms"
    )
    if row.get("peak_gib") is not None:
        text += f", peak {row['peak_gib']:.1f} GiB"
    if row.get("peak_rss_gib") is not None:
        text += f", peak RSS {row['peak_rss_gib']:.1f} GiB"
    if row.get("tflops_per_s") is not None:
        text += f", {flops_text(row['tflops_per_s'] * 1e12, 'FLOP/s')}"
    return text + ")"


class Report:
    def __init__(self, path: str | None, meta: dict) -> None:
        self.path = Path(path) if path else None
        self.data: dict[str, Any] = {"meta": meta, "rows": []}
        self.save()

    def add(self, key: str, value: Any) -> None:
        if key == "rows":
            self.data["rows"].append(value)
        else:
            self.data[key] = value
        self.save()

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- one step per model


def step_only(arch: Arch, args, device, dtype) -> None:
    """One guided prior step (batch 2) and one decoder step (batch 1) per size: the numbers
    DESIGN.md quotes for the CPU. Each model is built alone, so a CPU needs ~4.5 GB per model."""
    import gc

    import torch
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenDiffNeXt, WuerstchenPrior

    from adapters.wuerstchen.model_files import skip_decoder_weight_init
    from adapters.wuerstchen.pipelines import use_fused_attention

    torch.set_flush_denormal(True)
    for part in args.parts:
        started = time.perf_counter()
        with torch.device(device), skip_decoder_weight_init():
            model = (WuerstchenPrior if part == "prior" else WuerstchenDiffNeXt)(**getattr(arch, part))
        model = torch.nn.Module.to(model, dtype=dtype).eval().requires_grad_(False)
        use_fused_attention(model)
        millions = sum(p.numel() for p in model.parameters()) / 1e6
        log(f"built {part} ({millions:.0f}M) in {time.perf_counter() - started:.1f}s")
        for size in args.sizes:
            (ph, pw), (dh, dw) = latent_sizes(size, size)
            with torch.inference_mode(), torch.device(device):
                if part == "prior":
                    batch = 2 if args.prior_guidance > 1 else 1
                    c_cond = arch.prior.get("c_cond", 1024)
                    inputs: tuple[torch.Tensor, ...] = (
                        torch.randn(batch, arch.prior.get("c_in", 16), ph, pw, dtype=dtype),
                        torch.rand(batch, dtype=dtype),
                        torch.randn(batch, tiny.MAX_TOKENS, c_cond, dtype=dtype),
                    )
                else:
                    batch = 2 if args.decoder_guidance > 1 else 1
                    clip_embd = arch.decoder.get("clip_embd", 1024)
                    effnet = arch.decoder.get("effnet_embd", 16)
                    inputs = (
                        torch.randn(batch, 4, dh, dw, dtype=dtype),
                        torch.rand(batch, dtype=dtype),
                        torch.randn(batch, effnet, ph, pw, dtype=dtype),
                        torch.randn(batch, tiny.MAX_TOKENS, clip_embd, dtype=dtype),
                    )
                times = []
                for _ in range(max(1, args.warmup) + max(1, args.repeats)):
                    sync(device)
                    t0 = time.perf_counter()
                    model(*inputs)
                    sync(device)
                    times.append(time.perf_counter() - t0)
            timed = times[max(1, args.warmup) :]
            log(
                f"{part} step {size}x{size} batch {batch}: {statistics.median(timed):.3f} s "
                f"(first {times[0]:.3f} s, runs {', '.join(f'{t:.3f}' for t in timed)})"
            )
        del model
        gc.collect()


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test architecture (CPU, seconds)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cuda, cpu ...")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="auto (the worker's choice: bf16 on CUDA and on CPUs with native bf16, else fp32), bf16, fp16, fp32",
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: physical cores)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "openvino"),
        help="auto (the worker's GENERATOR_BACKEND=auto choice), torch or openvino (bench/openvino_backend.py)",
    )
    parser.add_argument("--ov-int8", action="store_true", help="openvino: NNCF int8 weight compression")
    parser.add_argument("--ov-dir", default="data/compile-cache/openvino-bench", help="openvino: IR and model cache")
    parser.add_argument("--sizes", default=None, help="square sizes, e.g. 1024,512 (tiny: 256,128)")
    parser.add_argument("--batches", default=None, help="e.g. 1-16 or 1,2,4,8,16 (tiny: 1,2,4)")
    parser.add_argument(
        "--modes",
        default=None,
        help="in order, of eager, eager-cl, compiled, compiled-cl (-cl: channels-last layout); "
        "default eager,compiled (tiny: eager)",
    )
    parser.add_argument("--compile-sizes", default=None, help="sizes to compile for (default: the first size)")
    parser.add_argument("--compile-batches", default="1,8", help="batches to compile for (each costs minutes)")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--compile-cache-dir", default="data/compile-cache", help="persistent compile cache")
    parser.add_argument("--prior-steps", type=int, default=29, help="prior evaluations (29: the default schedule)")
    parser.add_argument("--decoder-steps", type=int, default=12)
    parser.add_argument("--prior-guidance", type=float, default=4.0)
    parser.add_argument("--decoder-guidance", type=float, default=0.0)
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed calls before timing (the first included); 0: the first call is timed "
        "(with its one-time costs: OpenVINO compiles a new shape then)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per configuration (median)")
    parser.add_argument("--max-seconds", type=float, default=0, help="start nothing new after this (0: no limit)")
    parser.add_argument("--json", default=None, help="write the results to this file as they come")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    parser.add_argument("--flops-only", action="store_true", help="only count FLOPs (no model is run)")
    parser.add_argument("--step-only", action="store_true", help="time one step of the prior and the decoder")
    parser.add_argument("--parts", default="prior,decoder", help="with --step-only: which models")
    args = parser.parse_args(argv)
    args.sizes = parse_ints(args.sizes or ("256,128" if args.tiny else "1024,512"))
    args.batches = parse_ints(args.batches or ("1,2,4" if args.tiny else "1,2,4,8,12,16"))
    cpu = args.device == "cpu"
    modes = args.modes or ("eager" if args.tiny or cpu else "eager,compiled")
    args.modes = [m.strip() for m in modes.split(",") if m.strip()]
    args.compile_sizes = parse_ints(args.compile_sizes) if args.compile_sizes else args.sizes[:1]
    args.compile_batches = parse_ints(args.compile_batches)
    for mode in args.modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}")
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for part in args.parts:
        if part not in ("prior", "decoder"):
            parser.error(f"unknown part {part!r}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from adapters.huggingface.torch_setup import choose_dtype, default_threads, resolve_device

    started = time.perf_counter()
    arch = TINY if args.tiny else REAL
    device = resolve_device(args.device)
    dtype, dtype_reason = choose_dtype(args.dtype, device)  # the worker's own rule
    from adapters.openvino.backend import choose_backend

    backend, backend_reason = choose_backend(args.backend, args.device, tiny=args.tiny)  # the worker's rule too
    if device.type == "cpu":
        torch.set_num_threads(args.threads or default_threads())
    meta = {
        "arch": arch.name,
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
        ),
        "dtype": str(dtype),
        "dtype_reason": dtype_reason,
        "backend": backend + ("-int8w" if backend == "openvino" and args.ov_int8 else ""),
        "backend_reason": backend_reason,
        **(cpu_description() if device.type == "cpu" else {}),
        "torch": torch.__version__,
        "prior_steps": args.prior_steps,
        "decoder_steps": args.decoder_steps,
        "prior_guidance": args.prior_guidance,
        "decoder_guidance": args.decoder_guidance,
    }
    try:
        import diffusers

        meta["diffusers"] = diffusers.__version__
    except Exception:
        pass
    report = Report(args.json, meta)
    log("# Würstchen benchmark: " + ", ".join(f"{k}={v}" for k, v in meta.items()))

    flops: dict[int, float] = {}
    if not args.no_flops or args.flops_only:
        for size in args.sizes:
            parts = count_flops(
                arch,
                size,
                size,
                args.prior_steps,
                args.decoder_steps,
                args.prior_guidance > 1,
                args.decoder_guidance > 1,
            )
            flops[size] = parts["total"]
            log(
                f"FLOPs per image {size}x{size}: {flops_text(parts['total'])} ("
                + ", ".join(f"{k} {flops_text(v)}" for k, v in parts.items() if k != "total")
                + ")"
            )
            report.add(f"flops_{size}", parts)
        if device.type == "cuda":
            log(
                "  (the floor at ~790 TFLOP/s bf16 dense, H200/H100 SXM: "
                + ", ".join(f"{s}: {f / 790e12:.3f} s/image" for s, f in flops.items())
                + ")"
            )
    if args.flops_only:
        return report.data
    if args.step_only:
        step_only(arch, args, device, dtype)
        return report.data

    t0 = time.perf_counter()
    from adapters.wuerstchen.compilation import TorchCompile
    from adapters.wuerstchen.png import PngEncoder

    if backend == "openvino":
        from bench import openvino_backend

        pipelines, ov_info = openvino_backend.build(arch, dtype, args.ov_int8, args.ov_dir, torch.get_num_threads())
        models = {}
        args.modes = ["openvino"]
    else:
        pipelines, models = build_pipelines(arch, device, dtype)
    pngs = PngEncoder()
    compiler = TorchCompile(
        args.compile_backend, args.compile_mode, Path(args.compile_cache_dir) if args.compile_cache_dir else None
    )
    counts = param_counts(models)
    log(
        f"built {arch.name} model in {time.perf_counter() - t0:.1f}s: "
        + ", ".join(f"{k} {v:.1f}M" for k, v in counts.items())
    )
    report.add("params_m", counts)

    def out_of_time() -> bool:
        return bool(args.max_seconds) and time.perf_counter() - started > args.max_seconds

    compiled = False
    for mode in args.modes:
        # "-cl": the prior's and decoder's weights (and so activations) in the channels-last layout
        if backend != "openvino":
            pipelines.set_channels_last(mode.endswith("-cl"))
            pipelines.set_vqgan_channels_last(device.type == "cpu" or mode.endswith("-cl"))  # as a worker does
        if mode.startswith("compiled"):
            if not compiled:
                compiler.apply(pipelines, device)
                compiled = True
            log(
                f"compiling with backend={args.compile_backend} mode={args.compile_mode or 'default'} "
                f"(cache {args.compile_cache_dir}); each new shape compiles on its first call"
            )
            sizes, batches = args.compile_sizes, args.compile_batches
        else:
            sizes, batches = args.sizes, args.batches
        for size in sizes:
            for batch in batches:
                if out_of_time():
                    log(f"--max-seconds reached: skipping {mode} {size} batch {batch} and the rest")
                    break
                try:
                    row = measure(pipelines, pngs, mode, size, batch, args, device, flops)
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    log(f"{mode:>11} {size:>5}x{size:<5} batch {batch:>2}: out of GPU memory")
                    report.add("rows", {"mode": mode, "size": size, "batch": batch, "error": "oom"})
                    continue
                log(format_row(row))
                report.add("rows", row)
        if mode.startswith("compiled"):
            compiler.save_cache()
    if backend == "openvino":
        log(openvino_backend.describe(ov_info))
        report.add("openvino", {**ov_info, "counters": vars(ov_info["counters"])})
    best = max((r for r in report.data["rows"] if "images_per_s" in r), key=lambda r: r["images_per_s"], default=None)
    if best:
        log(f"best: {best['images_per_s']:.2f} images/s ({best['mode']}, {best['size']}px, batch {best['batch']})")
    log(f"total {time.perf_counter() - started:.1f}s, peak RSS {peak_rss_gib():.1f} GiB")
    return report.data


if __name__ == "__main__":
    main()
