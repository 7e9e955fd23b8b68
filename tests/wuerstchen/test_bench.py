"""The benchmark script: its tiny mode runs, and its FLOP count (on the meta device) equals what
FlopCounterMode sees when the real pipelines run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "wuerstchen_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("wuerstchen_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_tiny_mode_runs_and_reports(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = "--tiny --threads 1 --sizes 128 --batches 1,2 --repeats 1 --modes eager,eager-cl --prior-steps 4"
    data = bench.main([*argv.split(), "--decoder-steps", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "s/image" in printed and "images/s" in printed and "FLOPs per image 128x128" in printed
    rows = data["rows"]
    assert [(r["mode"], r["size"], r["batch"]) for r in rows] == [
        ("eager", 128, 1),
        ("eager", 128, 2),
        ("eager-cl", 128, 1),
        ("eager-cl", 128, 2),
    ]
    assert all(r["png_s_per_image"] > 0 and r["png_threads"] >= 1 for r in rows)
    assert all(r["s_per_image"] > 0 and r["images_per_s"] > 0 for r in rows)
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(rows, default=str))


def test_warmup_zero_times_the_first_call_and_no_other(bench, monkeypatch):
    """``--warmup 0`` (a slow CPU profile, minutes per call): one call in all, and it is the timed
    one; ``--warmup 1`` calls once untimed, then times ``--repeats`` calls."""
    calls: list[float] = []

    def fake_time_call(pipelines, requests, device):
        calls.append(float(len(calls) + 1))
        return calls[-1], None

    monkeypatch.setattr(bench, "time_call", fake_time_call)

    class NoPngs:
        threads = 1

        def encode_all(self, requests, pixels):
            pass

    import torch

    for warmup, repeats, expected_calls, expected_runs in ((0, 1, 1, [1.0]), (0, 2, 2, [1.0, 2.0]), (1, 1, 2, [2.0])):
        calls.clear()
        args = bench.parse_args(["--tiny", "--warmup", str(warmup), "--repeats", str(repeats)])
        row = bench.measure(None, NoPngs(), "eager", 128, 1, args, torch.device("cpu"), {})
        assert len(calls) == expected_calls and row["runs_s"] == expected_runs
        assert row["first_call_s"] == 1.0


def test_parse_ints(bench):
    assert bench.parse_ints("1-4,8,16") == [1, 2, 3, 4, 8, 16]
    assert bench.parse_ints("1024,512") == [1024, 512]


@pytest.mark.slow
def test_real_architecture_sizes_and_flops(bench):
    """The real configs give the hub models' parameter counts and DESIGN.md's 103.6 TFLOP/image."""
    import torch

    counts = bench.param_counts(bench.build_models(bench.REAL, "meta", torch.float32))
    for name, expected in bench.REAL.expected_params_m.items():
        assert counts[name] == pytest.approx(expected, rel=0.002), name
    flops = bench.count_flops(bench.REAL, 1024, 1024, 29, 12)
    assert flops["total"] / 1e12 == pytest.approx(103.6, rel=0.002)


async def test_meta_flop_count_matches_the_running_pipeline(bench, tiny_generator):
    """Counting one forward per model on meta tensors gives the FLOPs of a real generation."""
    from torch.utils.flop_counter import FlopCounterMode

    from domain.models import GenerationRequest

    request = GenerationRequest(prompt="a cat", width=256, height=128, seed=1, prior_steps=5, decoder_steps=3)
    with FlopCounterMode(display=False) as counter:
        tiny_generator.pipelines.denoise([request])
    counted = bench.count_flops(bench.TINY, 256, 128, 5, 3)["total"]
    assert counter.get_total_flops() == pytest.approx(counted, rel=0.01)


@pytest.mark.parametrize(("native", "dtype"), [("1", "torch.bfloat16"), ("0", "torch.float32")])
def test_cpu_run_names_the_cpu_and_takes_the_workers_dtype(bench, monkeypatch, capsys, native, dtype):
    """On a CPU: its model and bf16 flags, the worker's dtype choice with its reason (the CPU check
    overridden here), and the peak RSS."""
    monkeypatch.setenv("P2P_CPU_BF16", native)
    argv = "--tiny --device cpu --threads 1 --sizes 128 --batches 1 --repeats 1 --prior-steps 2 --decoder-steps 2"
    data = bench.main([*argv.split(), "--no-flops"])
    printed = capsys.readouterr().out
    meta = data["meta"]
    assert meta["dtype"] == dtype and meta["dtype_reason"] == f"P2P_CPU_BF16={native}"
    assert meta["cpu"] and meta["cpu"] in printed and "cpu_flags=" in printed
    [row] = data["rows"]
    assert row["mode"] == "eager" and row["peak_rss_gib"] > 0.05
    assert "peak RSS" in printed


def test_the_stage_profile_accounts_for_every_model_call(tmp_path, capsys):
    """bench/wuerstchen_stages.py on the tiny model: each variant times every model call of one
    image (the prior's text encoder on the prompt and on the negative prompt, each prior
    evaluation and decoder step, the VQGAN decode), and the stages plus the rest add up to the
    call's wall time."""
    spec = importlib.util.spec_from_file_location("wuerstchen_stages", BENCH.parent / "wuerstchen_stages.py")
    stages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stages)
    args = "--tiny --size 128 --prior-steps 3 --decoder-steps 2 --repeats 0 --variants t1,t1+cl+denormal"
    rows = stages.main(args.split())
    printed = capsys.readouterr().out
    assert [r["variant"] for r in rows] == ["t1", "t1+cl+denormal"]
    for row in rows:
        assert row["_counts"] == {"prior_text": 2, "prior": 3, "decoder_text": 1, "decoder": 2, "vqgan": 1}
        parts = sum(row[k] for k in ("prior_text", "prior", "decoder_text", "decoder", "vqgan", "other", "png"))
        assert parts == pytest.approx(row["total"], rel=1e-6)
        assert all(row[k] > 0 for k in ("prior", "decoder", "vqgan", "png", "cpu_prior_step", "cpu_decoder_step"))
    assert "per prior eval" in printed and "peak RSS" in printed


def test_the_stage_profile_times_the_openvino_backend_too(tmp_path, capsys):
    """``--backend openvino``: the same stages, timed around each converted model's call (the tiny
    model converted into ``--ov-dir``); the stages plus the rest still add up to the call."""
    spec = importlib.util.spec_from_file_location("wuerstchen_stages", BENCH.parent / "wuerstchen_stages.py")
    stages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stages)
    args = f"--tiny --backend openvino --ov-dir {tmp_path} --size 128 --prior-steps 3 --decoder-steps 2 --repeats 1"
    [row] = stages.main(args.split())
    printed = capsys.readouterr().out
    assert row["variant"] == "base"
    assert row["_counts"] == {"prior_text": 2, "prior": 3, "decoder_text": 1, "decoder": 2, "vqgan": 1}
    parts = sum(row[k] for k in ("prior_text", "prior", "decoder_text", "decoder", "vqgan", "other", "png"))
    assert parts == pytest.approx(row["total"], rel=1e-6)
    assert all(row[k] > 0 for k in ("prior", "decoder", "vqgan", "cpu_prior_step", "cpu_decoder_step"))
    assert "backend openvino" in printed and "OpenVINO" in printed and "converted" in printed
    with pytest.raises(SystemExit):  # torch-only variants are refused, not silently ignored
        stages.main([*args.split(), "--variants", "cl"])
