"""bench/hardware_table.py and bench/model_footprint.py on the tiny model: the table's rows are the
worker's own profiles, measured or extrapolated as the table says, and the GPU rows cite the
H200 run's files; the footprint counts the bytes of every part a worker downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import hardware_table, model_footprint
from config.factories import profiles
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
H200 = ROOT / "bench" / "results" / "h200-2026-11-26"


def test_the_table_has_one_row_per_shipped_profile_fast_measured_the_rest_extrapolated(tmp_path):
    result = hardware_table.main(
        ["--tiny", "--job-size", "256", "--configs", "auto", "--batches", "1", "--json", str(tmp_path / "t.json")]
    )
    shipped = profiles(Settings.model_validate({}))
    rows = {r["profile"]: r for r in result["rows"]}
    assert set(rows) == set(shipped)
    for name, profile in shipped.items():
        row = rows[name]
        assert row["steps"] == f"{profile.prior_steps}+{profile.decoder_steps}"
        assert row["size"] == "256x256"
        assert row["s_per_image"] > 0 and row["peak_rss_gib"] > 0
        assert row["meta"]["arch"] == "tiny"
        assert f"| {name} | 256x256 | {row['steps']} | 1 |" in result["table"]
    assert rows["fast"]["how"] == "measured"
    for name in set(shipped) - {"fast"}:
        assert rows[name]["how"].startswith("extrapolated: probe ")
    # More steps, same size: the extrapolation grows with the steps.
    assert rows["quality"]["s_per_image"] > rows["balanced"]["s_per_image"]
    assert (tmp_path / "t.json").is_file()


def test_an_avx2_capped_worker_picks_float32_and_the_table_says_so(monkeypatch):
    # The suite turns the CPU's bf16 check off (P2P_CPU_BF16=0); here the real check must run.
    monkeypatch.delenv("P2P_CPU_BF16", raising=False)
    result = hardware_table.main(
        ["--tiny", "--job-size", "256", "--configs", "avx2", "--profiles", "fast", "--batches", "1"]
    )
    (row,) = result["rows"]
    assert row["meta"]["dtype"] == "torch.float32"
    assert row["meta"]["dtype_reason"] in ("onednn-without-bf16", "cpu-without-native-bf16")
    assert "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2" in result["table"]


def test_gpu_rows_cite_the_h200_run_and_name_the_profiles_it_did_not_measure():
    shots = hardware_table.shipped_shots()
    rows = hardware_table.gpu_rows(H200, shots)
    eager_1024 = {r["batch"]: r for r in rows if r["mode"] == "eager" and r["size"] == 1024}
    assert {b: round(r["peak_gib"], 1) for b, r in eager_1024.items()} == {1: 6.9, 8: 14.1, 16: 22.4}
    assert all(r["profile"] == "quality" and r["device"] == "NVIDIA H200" for r in eager_1024.values())
    assert all(r["file"].startswith("bench/results/h200-2026-11-26/") for r in rows)
    table = hardware_table.markdown([], rows, shots, {"compose": 1, "chart": 2})
    assert "Not measured on that GPU (no row with their steps and size): balanced, fast." in table


def test_step_lines_are_read_and_a_missing_one_is_an_error():
    printed = (
        "built prior (994M) in 3.1s\n"
        "prior step 512x512 batch 2: 6.200 s (first 7.1 s)\n"
        "decoder step 512x512 batch 1: 6.300 s (runs 6.300)\n"
    )
    assert hardware_table.step_times(printed) == {"prior": 6.2, "decoder": 6.3}
    with pytest.raises(RuntimeError):
        hardware_table.step_times("prior step 512x512 batch 2: 6.200 s\n")


def test_cpu_batches_are_read_from_compose_and_the_chart():
    batches = hardware_table.shipped_cpu_batches()
    assert set(batches) == {"compose", "chart"}
    assert all(isinstance(b, int) and b >= 1 for b in batches.values())


def test_the_footprint_writes_every_part_a_worker_downloads(tmp_path):
    result = model_footprint.main(["--tiny", "--json", str(tmp_path / "f.json")])
    files = result["files"]
    parts = {"prior/prior", "prior/text_encoder", "decoder/decoder", "decoder/text_encoder", "decoder/vqgan"}
    assert parts | {"prior/scheduler", "decoder/scheduler", "translator"} == set(files)
    for name in parts:
        assert files[name]["bytes"] >= 4 * files[name]["params"]  # float32 tensors and their headers
    assert files["translator"]["weights_bytes"] > 0
    assert result["downloaded_bytes"] == sum(f["bytes"] for f in files.values())
    assert result["nudenet_in_image_bytes"] and result["nudenet_in_image_bytes"] > 1_000_000


def test_each_configuration_names_its_backend_and_openvino_steps_are_not_taken_from_torch(monkeypatch):
    """``auto`` runs what a worker runs (OpenVINO where it is installed); the extrapolation times
    one step of each model with torch's modules, so a probe that ran on OpenVINO is refused
    instead of being completed with torch's step times."""
    seen: list[list[str]] = []

    def fake_run_bench(argv, env, lock, timeout_s):
        seen.append(list(argv))
        backend = argv[argv.index("--backend") + 1]
        meta = {"backend": "openvino" if backend == "auto" else "torch"}
        row = {"batch": 1, "s_per_call": 3.0, "s_per_image": 3.0, "peak_rss_gib": 1.0}
        return {"meta": meta, "rows": [row]}, ""

    monkeypatch.setattr(hardware_table, "run_bench", fake_run_bench)
    shot = hardware_table.Shot("quality", 1024, 1024, 29, 12, 4.0, 0.0)
    args = hardware_table.parse_args(["--configs", "auto"])
    with pytest.raises(RuntimeError, match="ran on openvino; steps are timed on torch only"):
        hardware_table.measure_extrapolated("auto", [shot], args)
    assert seen[-1][seen[-1].index("--backend") + 1] == "auto"
    for config in ("fp32", "torch", "avx2"):
        hardware_table.measure_full(config, shot, [1], args)
        assert seen[-1][seen[-1].index("--backend") + 1] == "torch"
