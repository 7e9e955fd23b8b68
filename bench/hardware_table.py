#!/usr/bin/env python
"""The hardware table of docs/deploy.md: seconds per picture per quality profile, peak memory, per machine.

Every CPU figure comes from ``bench/wuerstchen_bench.py`` (the real architecture with random
weights, the adapter's own pipelines), run here as a subprocess, one configuration after the
other, with ``--json``. The profiles are the worker's own (``config.factories.profiles`` over the
default settings), each at the size a default job gets in it (``domain.speed.calibration_request``,
as the worker's calibration times it), so nothing here retypes a step count or a size.

A profile is measured in full (``--full``, by default the fast profile, the only one CPU workers
make: ``QUALITY_CAP=fast``) at the batch sizes CPU workers ship (compose's and the chart's
``MAX_BATCH``, read from docker-compose.yml and the chart's values). The slower profiles would take
many minutes per picture on a small CPU (full quality at 1024 in fp32: about 23 minutes on 2
cores), so they are extrapolated as a worker's calibration does (``domain.speed``): one probe call
with one step of each model (text encoders, the steps' fixed costs and the VQGAN included), plus
the missing steps at the time of one step of each model (``--step-only`` at the same size). The
table says which rows are extrapolated.

CPU configurations (``--configs``):

- ``auto``: as a default worker runs (``GENERATOR_DTYPE=auto``: bf16 on a CPU with native bf16);
- ``fp32``: float32 named explicitly, on the same CPU;
- ``torch``: the worker's dtype on the torch backend (``GENERATOR_BACKEND=torch``), where ``auto``
  runs OpenVINO;
- ``avx2``: an AVX2-only CPU imitated by capping the instruction sets: ``ATEN_CPU_CAPABILITY=avx2``
  (ATen's kernels), ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN, which also makes torch report no bf16
  support, so ``auto`` picks fp32) and ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (MKL's fp32 matrix
  products). That is an ISA-capped Intel, not an AMD or an older Intel: caches, memory bandwidth
  and clocks stay this machine's.

GPU rows are not measured here: ``--gpu-results`` cites the JSON files that ``bench/gpu_check.sh``
wrote on a lent GPU (the card, the run's folder, the steps of each row) and matches them to the
profiles; a profile whose steps and size were not measured there is printed as not measured.

Real-size runs load about 13 GiB each: run them under the shared lock, one at a time (``--lock``
takes it for each subprocess, so others can go between two runs). Examples::

    python bench/hardware_table.py --tiny                       # the logic, on the tiny model
    python bench/hardware_table.py --configs auto --lock /work/notes/bench.lock --json out/auto.json
    python bench/hardware_table.py --gpu-results bench/results/h200-2026-11-26 --configs ''
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH = ROOT / "bench" / "wuerstchen_bench.py"

# Environment of each CPU configuration, and the dtype the bench is told.
AVX2_CAP = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
CONFIGS: dict[str, tuple[dict[str, str], str]] = {
    "auto": ({}, "auto"),
    "fp32": ({}, "float32"),
    "avx2": (AVX2_CAP, "auto"),
    "torch": ({}, "auto"),
}
# The backend each configuration is told (``auto``: the worker's GENERATOR_BACKEND=auto choice,
# OpenVINO on a CPU where it is installed); the others name torch, as their rows say.
BACKENDS = {"auto": "auto", "fp32": "torch", "avx2": "torch", "torch": "torch"}

STEP_LINE = re.compile(r"^(prior|decoder) step (\d+)x(\d+) batch (\d+): ([0-9.]+) s")


@dataclass(frozen=True)
class Shot:
    """One profile as a default job gets it: its name, size and steps."""

    name: str
    width: int
    height: int
    prior_steps: int
    decoder_steps: int
    prior_guidance: float
    decoder_guidance: float


@dataclass
class Row:
    config: str
    profile: str
    size: str
    steps: str
    batch: int
    s_per_image: float
    peak_rss_gib: float | None
    how: str  # "measured" or "extrapolated: ..."
    meta: dict[str, Any] = field(default_factory=dict)


def shipped_shots(job_size: int = 0) -> list[Shot]:
    """The worker's profiles over the default settings, at a default job's size in each
    (``job_size``: a square job of that side instead, for the tiny model's test)."""
    from config.factories import profiles
    from config.settings import Settings
    from domain.speed import calibration_request

    settings = Settings.model_validate({})  # as a worker reads them: the defaults, and the environment
    width, height = (job_size, job_size) if job_size else (settings.default_width, settings.default_height)
    shots = []
    for name, profile in profiles(settings).items():
        request = calibration_request(profile, width, height)
        shots.append(
            Shot(
                name,
                request.width,
                request.height,
                request.prior_steps,
                request.decoder_steps,
                request.prior_guidance,
                request.decoder_guidance,
            )
        )
    return shots


def shipped_cpu_batches() -> dict[str, int]:
    """``MAX_BATCH`` of the CPU workers: compose's default (``${MAX_BATCH:-N}`` in the workers'
    environment) and the chart's ``cpuWorker.maxBatch``."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    text = str(compose["x-worker-env"]["MAX_BATCH"])
    match = re.fullmatch(r"\$\{MAX_BATCH:-(\d+)\}", text)
    values = yaml.safe_load((ROOT / "deploy/helm/prompt2pic/values.yaml").read_text())
    return {"compose": int(match.group(1) if match else text), "chart": int(values["cpuWorker"]["maxBatch"])}


def run_bench(argv: Sequence[str], env: dict[str, str], lock: str | None, timeout_s: float) -> tuple[dict, str]:
    """One bench process (under ``flock lock`` when given: the wait for the lock is not timed);
    its JSON and its printed lines. The bench writes its JSON as it measures, so a run stopped at
    ``timeout_s`` still gives what it measured (``meta.cut``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        command = [
            "timeout",
            "--kill-after=10",
            f"{timeout_s:g}",
            sys.executable,
            str(BENCH),
            *argv,
            "--json",
            str(out),
        ]
        if lock:
            command = ["flock", lock, *command]
        shown = [f"{k}={v}" for k, v in env.items()] + command
        print("$ " + " ".join(shown), flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
        load = os.getloadavg()[0]
        print(f"  ({time.perf_counter() - started:.0f} s with the wait for the lock; load {load:.1f})", flush=True)
        data = json.loads(out.read_text()) if out.is_file() else None
        if done.returncode != 0 and not (data and data.get("rows")):
            raise RuntimeError(f"bench failed ({done.returncode}): {(done.stderr + done.stdout).strip()[-2000:]}")
        assert data is not None
        data["meta"]["load_at_end"] = round(load, 1)  # the machine's 1-minute load average as it ended
        if done.returncode != 0:
            data["meta"]["cut"] = f"stopped after {timeout_s:g} s (exit {done.returncode})"
        return data, done.stdout


def step_times(stdout: str) -> dict[str, float]:
    """Seconds of one prior and one decoder step, from ``--step-only``'s printed lines (it writes
    no rows to its JSON)."""
    found = {m.group(1): float(m.group(5)) for m in map(STEP_LINE.match, stdout.splitlines()) if m}
    if set(found) != {"prior", "decoder"}:
        raise RuntimeError(f"no step times in the bench's output:\n{stdout[-2000:]}")
    return found


def common_args(shot: Shot, dtype: str, tiny: bool, backend: str = "auto") -> list[str]:
    if shot.width != shot.height:
        raise ValueError(f"the bench times square images only; {shot.name} is {shot.width}x{shot.height}")
    return [
        *(["--tiny"] if tiny else []),
        "--backend",
        backend,
        "--device",
        "cpu",
        "--dtype",
        dtype,
        "--sizes",
        str(shot.width),
        "--prior-guidance",
        f"{shot.prior_guidance:g}",
        "--decoder-guidance",
        f"{shot.decoder_guidance:g}",
        "--modes",
        "eager",
        "--no-flops",
    ]


def measure_full(config: str, shot: Shot, batches: list[int], args: argparse.Namespace) -> list[Row]:
    env, dtype = CONFIGS[config]
    argv = [
        *common_args(shot, dtype, args.tiny, BACKENDS[config]),
        "--batches",
        ",".join(map(str, batches)),
        "--prior-steps",
        str(shot.prior_steps),
        "--decoder-steps",
        str(shot.decoder_steps),
        "--warmup",
        "1",
        "--repeats",
        "1",
    ]
    data, _ = run_bench(argv, env, args.lock, args.timeout)
    return [
        Row(
            config,
            shot.name,
            f"{shot.width}x{shot.height}",
            f"{shot.prior_steps}+{shot.decoder_steps}",
            r["batch"],
            r["s_per_image"],
            r["peak_rss_gib"],
            "measured" + (f" ({data['meta']['cut']})" if "cut" in data["meta"] else ""),
            data["meta"],
        )
        for r in data["rows"]
        if "s_per_image" in r
    ]


def measure_extrapolated(config: str, shots: list[Shot], args: argparse.Namespace) -> list[Row]:
    """``shots`` of one size: one probe (one step of each model) and one step of each model alone."""
    env, dtype = CONFIGS[config]
    base = common_args(shots[0], dtype, args.tiny, BACKENDS[config])
    probe, _ = run_bench(
        [*base, "--batches", "1", "--prior-steps", "1", "--decoder-steps", "1", "--warmup", "1", "--repeats", "1"],
        env,
        args.lock,
        args.timeout,
    )
    if probe["meta"].get("backend") != "torch":
        # --step-only times torch's modules: steps of another backend are not extrapolated from them
        raise RuntimeError(
            f"the probe ran on {probe['meta'].get('backend')}; steps are timed on torch only "
            "(bench/wuerstchen_stages.py --backend openvino times that backend's stages)"
        )
    _, printed = run_bench([*base, "--step-only", "--warmup", "1", "--repeats", "1"], env, args.lock, args.timeout)
    steps = step_times(printed)
    row = next(r for r in probe["rows"] if "s_per_image" in r)
    rows = []
    for shot in shots:
        seconds = (
            row["s_per_call"] + (shot.prior_steps - 1) * steps["prior"] + (shot.decoder_steps - 1) * steps["decoder"]
        )
        how = (
            f"extrapolated: probe {row['s_per_call']:.1f} s (1+1 steps) + {shot.prior_steps - 1} x "
            f"{steps['prior']:.2f} s + {shot.decoder_steps - 1} x {steps['decoder']:.2f} s"
        )
        rows.append(
            Row(
                config,
                shot.name,
                f"{shot.width}x{shot.height}",
                f"{shot.prior_steps}+{shot.decoder_steps}",
                1,
                seconds,
                row["peak_rss_gib"],
                how,
                probe["meta"],
            )
        )
    return rows


def cpu_rows(args: argparse.Namespace, shots: list[Shot], batches: list[int]) -> list[Row]:
    rows: list[Row] = []
    full = [s for s in shots if s.name in args.full]
    rest = [s for s in shots if s.name not in args.full and s.name in args.profiles]
    for config in args.configs:
        for shot in full:
            try:
                rows += measure_full(config, shot, batches, args)
            except RuntimeError as error:
                print(f"{config} {shot.name}: not measured: {error}", flush=True)
        for size in dict.fromkeys((s.width, s.height) for s in rest):
            try:
                rows += measure_extrapolated(config, [s for s in rest if (s.width, s.height) == size], args)
            except RuntimeError as error:
                print(f"{config} {size}: not extrapolated: {error}", flush=True)
    return rows


def gpu_rows(folder: Path, shots: list[Shot]) -> list[dict[str, Any]]:
    """The rows of ``bench/gpu_check.sh``'s JSON files, each named by the profile whose steps and
    size it has (or none)."""
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        meta = data.get("meta", {})
        for r in data.get("rows", []):
            if "s_per_image" not in r:
                continue
            profile = next(
                (
                    s.name
                    for s in shots
                    if (s.prior_steps, s.decoder_steps, s.width)
                    == (meta.get("prior_steps"), meta.get("decoder_steps"), r["size"])
                ),
                "",
            )
            out.append(
                {
                    "file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                    "device": meta.get("device_name", "?"),
                    "dtype": meta.get("dtype", "?"),
                    "torch": meta.get("torch", "?"),
                    "steps": f"{meta.get('prior_steps')}+{meta.get('decoder_steps')}",
                    "profile": profile,
                    "mode": r["mode"],
                    "size": r["size"],
                    "batch": r["batch"],
                    "s_per_image": r["s_per_image"],
                    "peak_gib": r.get("peak_gib"),
                }
            )
    return out


def markdown(
    rows: list[Row], gpu: list[dict[str, Any]], shots: list[Shot], batches: dict[str, int], job_size: int = 0
) -> str:
    lines = [
        "Profiles (config.factories.profiles, "
        + ("default job " if not job_size else f"a {job_size}x{job_size} job: ")
        + ", ".join(f"{s.name} {s.width}x{s.height} {s.prior_steps}+{s.decoder_steps} steps" for s in shots)
        + f"); CPU workers ship MAX_BATCH {batches['compose']} (compose) and {batches['chart']} (chart)."
    ]
    for config in dict.fromkeys(r.config for r in rows):
        meta = next(r.meta for r in rows if r.config == config)
        env = " ".join(f"{k}={v}" for k, v in CONFIGS[config][0].items()) or "no ISA cap"
        lines += [
            "",
            f"CPU `{config}` ({env}): {meta.get('cpu')}, {meta.get('device_name')}, flags as torch detects "
            f"them: {meta.get('cpu_flags')}; dtype {meta.get('dtype')} ({meta.get('dtype_reason')}), "
            f"torch {meta.get('torch')}, eager",
            "",
            "| profile | size | steps | batch | s per image | peak RSS | how | load average at the end |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r.config == config):
            rss = f"{r.peak_rss_gib:.1f} GiB" if r.peak_rss_gib is not None else ""
            lines.append(
                f"| {r.profile} | {r.size} | {r.steps} | {r.batch} | {r.s_per_image:.2f} | {rss} | {r.how} "
                f"| {r.meta.get('load_at_end', '')} |"
            )
    if gpu:
        lines += [
            "",
            "GPU, not measured here: rows of bench/gpu_check.sh's JSON (peak = torch's allocated memory)",
            "",
            "| device | file | profile | steps | mode | size | batch | s per image | peak GPU memory |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for g in gpu:
            peak = f"{g['peak_gib']:.1f} GiB" if g["peak_gib"] is not None else ""
            lines.append(
                f"| {g['device']} ({g['dtype']}, torch {g['torch']}) | {g['file']} | {g['profile'] or '-'} | "
                f"{g['steps']} | {g['mode']} | {g['size']} | {g['batch']} | {g['s_per_image']:.3f} | {peak} |"
            )
        seen = {g["profile"] for g in gpu}
        missing = [s.name for s in shots if s.name not in seen]
        if missing:
            lines.append(f"\nNot measured on that GPU (no row with their steps and size): {', '.join(missing)}.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test architecture (seconds, no lock needed)")
    parser.add_argument("--configs", default="auto", help=f"CPU configurations, of {', '.join(CONFIGS)} ('': none)")
    parser.add_argument("--profiles", default="", help="profiles to time (default: all the worker's)")
    parser.add_argument("--full", default="fast", help="profiles timed in full; the others are extrapolated")
    parser.add_argument("--batches", default="", help="batches of the full runs (default: CPU workers' MAX_BATCH)")
    parser.add_argument("--job-size", type=int, default=0, help="a square job of this side (default: the settings')")
    parser.add_argument("--lock", default=None, help="flock this file around each bench process")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per bench process (the lock's wait apart)")
    parser.add_argument("--gpu-results", default=None, help="folder of bench/gpu_check.sh's JSON to cite")
    parser.add_argument("--json", default=None, help="write rows and the table to this file")
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for config in args.configs:
        if config not in CONFIGS:
            parser.error(f"unknown configuration {config!r}")
    args.full = {p.strip() for p in args.full.split(",") if p.strip()}
    args.profiles = {p.strip() for p in args.profiles.split(",") if p.strip()}
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    shots = shipped_shots(args.job_size)
    names = {s.name for s in shots}
    unknown = (args.full | args.profiles) - names
    if unknown:
        raise SystemExit(f"unknown profiles {sorted(unknown)}; the worker's are {sorted(names)}")
    if not args.profiles:
        args.profiles = names
    args.full &= args.profiles
    shipped = shipped_cpu_batches()
    batches = [int(b) for b in args.batches.split(",") if b.strip()] if args.batches else sorted(set(shipped.values()))
    rows = cpu_rows(args, shots, batches)
    gpu = gpu_rows(Path(args.gpu_results), shots) if args.gpu_results else []
    table = markdown(rows, gpu, shots, shipped, args.job_size)
    print(table, flush=True)
    result = {
        "shots": [asdict(s) for s in shots],
        "cpu_batches": shipped,
        "rows": [asdict(r) for r in rows],
        "gpu": gpu,
        "table": table,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


if __name__ == "__main__":
    main()
