"""CPU workers at the hardware's speed (issue 27): ``GENERATOR_DTYPE=auto`` picks bf16 where the CPU
has native bf16, bf16 stays close to fp32, and the worker's own calibration at start (timed on the
tiny model, or read from its cache) is what the adaptive policy starts from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adapters.embedded.speed_cache import JsonSpeedCache
from adapters.huggingface.torch_setup import CPU_BF16_ENV, choose_dtype, cpu_bf16
from adapters.otel.metrics import OtelMetrics
from adapters.wuerstchen.generator import WuerstchenGenerator
from domain.policy import AdaptivePolicy
from domain.quality import DEFAULT_PROFILES
from domain.speed import CACHED, MEASURED
from domain.use_cases.calibrate import CalibrateSpeed

H200 = {"quality": 0.55, "balanced": 0.32, "fast": 0.04}


def proc_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_the_cpu_check_agrees_with_the_cpu_flags_and_can_be_overridden(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    native, reason = cpu_bf16()
    assert native == bool({"amx_bf16", "avx512_bf16"} & proc_flags())
    assert reason.startswith("cpu-")
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert cpu_bf16() == (False, f"{CPU_BF16_ENV}=0")
    assert choose_dtype("auto", torch.device("cpu")) == (torch.float32, f"{CPU_BF16_ENV}=0")
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert choose_dtype("auto", torch.device("cpu")) == (torch.bfloat16, f"{CPU_BF16_ENV}=1")
    assert choose_dtype("float32", torch.device("cpu")) == (torch.float32, "explicit")  # a named dtype wins


@pytest.mark.parametrize(
    ("dtype", "native", "expected", "reason"),
    [
        ("auto", True, torch.bfloat16, "override=1"),
        ("auto", False, torch.float32, "override=0"),
        ("float32", True, torch.float32, "explicit"),
        ("bfloat16", False, torch.bfloat16, "explicit"),
    ],
)
async def test_auto_dtype_follows_the_cpu_check(tiny_model, dtype, native, expected, reason):
    prior, decoder = tiny_model
    gen = WuerstchenGenerator(prior, decoder, device="cpu", dtype=dtype, threads=1, cpu_bf16=native)
    await gen.start()
    try:
        assert (gen.dtype, gen.dtype_reason) == (expected, reason)
        assert gen.pipelines.prior_pipe.prior.dtype == expected
        assert gen.pipelines.decoder_pipe.decoder.dtype == expected
        identity = gen.speed_identity()
        assert identity["dtype"] == str(expected).removeprefix("torch.")
        assert identity["dtype_reason"] == reason
        assert identity["backend"] == "torch-eager" and identity["device"] == "cpu"
    finally:
        await gen.stop()


async def test_bf16_parts_stay_close_to_fp32(tiny_model):
    """Each part the worker runs, fed the same inputs, in bf16 against fp32.

    Tolerances (measured here): VQGAN pixels 1.0 of 255, mean absolute (0.22); text encoders 2 %
    relative L2 (0.6 %); one decoder step 3 % (1.1 %). Whole pictures of the tiny random-weight
    model cannot be compared this way: its prior divides by |1 - b| with random b, so its sampling
    chain is chaotic, and bf16 and fp32 pictures of one seed differ about as much as two seeds do
    (measured: 35-80 of 255 against 47-80)."""
    prior, decoder = tiny_model
    gens = {}
    for native in (False, True):
        gens[native] = WuerstchenGenerator(prior, decoder, device="cpu", threads=1, cpu_bf16=native)
        await gens[native].start()
    try:
        torch.manual_seed(0)
        fp32, bf16 = gens[False].pipelines, gens[True].pipelines
        tokens = fp32.decoder_pipe.tokenizer(["a red cat on a sofa"], return_tensors="pt").input_ids
        latents = torch.randn(1, 4, 32, 32)
        dec = fp32.decoder_pipe.decoder
        x = torch.randn(1, dec.config.c_in, 16, 16)
        # r = 0: exact in bf16. Any other ratio is not, and the models' timestep embedding (r x 10000,
        # then sin/cos, in the model's dtype: diffusers' code, on GPUs too) loses its finest waves.
        r = torch.zeros(1)
        effnet = torch.randn(1, dec.config.effnet_embd, 4, 4)
        clip = torch.randn(1, 77, dec.config.clip_embd)

        def rel(a, b) -> float:
            return float((a.float() - b.float()).norm() / a.float().norm())

        with torch.inference_mode():
            for name in ("prior_pipe", "decoder_pipe"):
                a = getattr(fp32, name).text_encoder(tokens).last_hidden_state
                b = getattr(bf16, name).text_encoder(tokens).last_hidden_state
                assert rel(a, b) < 0.02, name
            a = fp32.decoder_pipe.decoder(x, r, effnet, clip, return_noise=False)[0]
            bf = torch.bfloat16
            b = bf16.decoder_pipe.decoder(x.to(bf), r.to(bf), effnet.to(bf), clip.to(bf), return_noise=False)[0]
            assert rel(a, b) < 0.03
            a = fp32.decoder_pipe.vqgan.decode(latents).sample.clamp(0, 1)
            b = bf16.decoder_pipe.vqgan.decode(latents.to(bf)).sample.float().clamp(0, 1)
            assert float((a - b).abs().mean()) * 255 < 1.0
    finally:
        for gen in gens.values():
            await gen.stop()


class CountingGenerator(WuerstchenGenerator):
    """The real generator, counting its timing runs."""

    timed = 0

    async def time_one(self, request):
        CountingGenerator.timed += 1
        return await super().time_one(request)


async def calibrated(tiny_model, cache: Path, metrics=None):
    prior, decoder = tiny_model
    gen = CountingGenerator(prior, decoder, device="cpu", threads=1, cpu_bf16=False)
    await gen.start()
    policy = AdaptivePolicy(dict(H200), profiles=dict(DEFAULT_PROFILES))
    try:
        calibrate = CalibrateSpeed(
            gen, dict(DEFAULT_PROFILES), policy, JsonSpeedCache(cache), width=256, height=256, budget_s=600
        )
        if metrics is not None:
            calibrate.metrics = metrics
        return await calibrate(), policy
    finally:
        await gen.stop()


async def test_the_calibration_feeds_the_policy_and_the_metrics(tiny_model, tmp_path):
    metrics = OtelMetrics(system_metrics=False)
    speed, policy = await calibrated(tiny_model, tmp_path / "speed.json", metrics)
    assert set(speed.sources.values()) == {MEASURED}  # the budget allows every full run
    assert policy.seconds_per_image == speed.seconds_per_image
    assert all(policy.seconds_per_image[p] != H200[p] for p in H200)
    # more steps take longer on the same machine (all at 256x256 here)
    assert speed.seconds_per_image["quality"] > speed.seconds_per_image["fast"]
    text = metrics.prometheus()[0].decode()
    assert "p2p_generator_info{" in text and 'dtype_reason="override=0"' in text and 'dtype="float32"' in text
    for profile, seconds in speed.seconds_per_image.items():
        line = next(x for x in text.splitlines() if "seconds_per_image" in x and f'profile="{profile}"' in x)
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(seconds)
    metrics.shutdown()


async def test_a_second_start_reads_the_cached_calibration(tiny_model, tmp_path):
    cache = tmp_path / "speed.json"
    first, _ = await calibrated(tiny_model, cache)
    timed = CountingGenerator.timed
    assert timed >= 3  # the cheapest profile's probe, then one run per profile
    second, policy = await calibrated(tiny_model, cache)
    assert CountingGenerator.timed == timed  # no second timing run
    assert set(second.sources.values()) == {CACHED}
    assert second.seconds_per_image == first.seconds_per_image == policy.seconds_per_image
    assert second.calibration_s == 0.0


@pytest.mark.parametrize(
    ("kind", "flags", "native", "reason"),
    [
        # Sapphire Rapids and later (this project's Xeon VM)
        ("amx", {"amx_bf16", "amx_tile", "avx512_bf16", "avx512_f", "avx2"}, True, "cpu-amx_bf16+avx512_bf16"),
        # AMD Zen 4 (EPYC 9004): bf16 dot products in AVX-512, no AMX tiles
        ("zen4", {"avx512_bf16", "avx512_vnni", "avx512_f", "avx2"}, True, "cpu-avx512_bf16"),
        # AVX-512 without BF16 (Skylake-SP, Ice Lake): bf16 emulated
        ("avx512", {"avx512_f", "avx512_vnni", "avx2"}, False, "cpu-without-native-bf16"),
        # AVX2 only (Zen 2/3, Haswell)
        ("avx2", {"avx2", "fma3"}, False, "cpu-without-native-bf16"),
    ],
)
def test_auto_picks_by_the_cpu_kind_with_the_detection_overridden(kind, flags, native, reason, monkeypatch):
    """The flags torch reports decide, whatever the vendor: a CPU with AVX512-BF16 and no AMX
    (Zen 4) gets bf16 on OpenVINO like an AMX Xeon (docs/benchmarks.md measured both kinds); one
    without native bf16 gets fp32. The flags and oneDNN's answer are replaced here, so the test
    says the same on any CPU."""
    from adapters.openvino.backend import choose_backend

    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    monkeypatch.setattr("adapters.huggingface.torch_setup.cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr("adapters.openvino.backend.openvino_installed", lambda: True)
    assert cpu_bf16() == (native, reason)
    assert choose_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else torch.float32, reason)
    assert choose_backend("auto", "cpu") == ("openvino", f"{reason}-openvino-measured-faster")
    # oneDNN without bf16 kernels (e.g. its ISA capped) overrides the flags: fp32
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert cpu_bf16()[0] is False
