"""Loading the Würstchen model: local folders, the hub cache, and clear errors when the weights are
nowhere to be found (this machine has no hub access)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from adapters.wuerstchen.generator import WuerstchenGenerator
from adapters.wuerstchen.model_files import resolve_repo
from domain.errors import GenerationError, ModelNotFound
from domain.models import GenerationRequest

SHA = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(cache, repo_id: str, folder) -> None:
    """Put ``folder`` into ``cache`` as the Hugging Face hub cache keeps a downloaded repo."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)
    shutil.copytree(folder, repo / "snapshots" / SHA)


def assert_one_clear_line(error: ModelNotFound, *fragments: str) -> None:
    text = str(error)
    assert "\n" not in text
    assert len(text) < 500
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    # Raised "from None": no chained traceback of the library's own errors.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


async def test_missing_local_folder_is_a_clear_model_not_found(tmp_path):
    missing = tmp_path / "no-such-model"
    gen = WuerstchenGenerator(str(missing / "prior"), str(missing / "decoder"), device="cpu")
    with pytest.raises(ModelNotFound) as caught:
        await gen.start()
    assert caught.value.code == "model_not_found"
    assert_one_clear_line(caught.value, str(missing / "prior"), "WUERSTCHEN_PRIOR", "does not exist")
    assert not gen.started


async def test_hub_id_not_cached_and_offline_is_a_clear_model_not_found(tmp_path):
    gen = WuerstchenGenerator(
        "warp-ai/wuerstchen-prior",
        "warp-ai/wuerstchen",
        device="cpu",
        local_files_only=True,
        cache_dir=tmp_path / "hf-cache",
    )
    with pytest.raises(ModelNotFound) as caught:
        await gen.start()
    assert_one_clear_line(
        caught.value,
        "'warp-ai/wuerstchen-prior'",
        str(tmp_path / "hf-cache"),
        "WUERSTCHEN_PRIOR",
        "hub access",
    )


async def test_hf_hub_offline_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound) as caught:
        # local_files_only=None: follow HF_HUB_OFFLINE, fail at once (no network retries)
        resolve_repo("warp-ai/wuerstchen", "decoder", ("decoder",), cache_dir=tmp_path)
    assert_one_clear_line(caught.value, "HF_HUB_OFFLINE", "WUERSTCHEN_DECODER")


async def test_incomplete_folder_names_what_is_missing(tiny_model, tmp_path):
    prior, decoder = tiny_model
    broken = tmp_path / "decoder"
    shutil.copytree(decoder, broken)
    shutil.rmtree(broken / "vqgan")
    gen = WuerstchenGenerator(prior, broken, device="cpu", threads=1)
    with pytest.raises(ModelNotFound) as caught:
        await gen.start()
    assert_one_clear_line(caught.value, "vqgan/", "WUERSTCHEN_DECODER")


async def test_corrupt_weights_are_a_model_not_found(tiny_model, tmp_path):
    prior, decoder = tiny_model
    broken = tmp_path / "prior"
    shutil.copytree(prior, broken)
    (broken / "prior" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    gen = WuerstchenGenerator(broken, decoder, device="cpu", threads=1)
    with pytest.raises(ModelNotFound) as caught:
        await gen.start()
    assert_one_clear_line(caught.value, "prior/", "WUERSTCHEN_PRIOR")


async def test_a_hub_id_loads_from_the_hub_cache_through_the_same_loader(tiny_model, tmp_path):
    """The tiny model placed in a Hugging Face cache as if downloaded: loading it by hub id, offline,
    gives the same pictures as loading it from its folder."""
    prior, decoder = tiny_model
    cache = tmp_path / "hf-cache"
    fake_hub_cache(cache, "acme/tiny-wuerstchen-prior", prior)
    fake_hub_cache(cache, "acme/tiny-wuerstchen", decoder)
    request = GenerationRequest(prompt="a cat", width=128, height=128, seed=5, prior_steps=6, decoder_steps=3)

    by_id = WuerstchenGenerator(
        "acme/tiny-wuerstchen-prior",
        "acme/tiny-wuerstchen",
        device="cpu",
        threads=1,
        local_files_only=True,
        cache_dir=cache,
    )
    by_folder = WuerstchenGenerator(str(prior), str(decoder), device="cpu", threads=1)
    await by_id.start()
    await by_folder.start()
    try:
        [a] = await by_id.generate([request])
        [b] = await by_folder.generate([request])
    finally:
        await by_id.stop()
        await by_folder.stop()
    assert a.png == b.png


async def test_model_index_settings_are_read(tiny_model, tmp_path):
    """The pipelines' own numbers come from model_index.json, as on the hub."""
    import json

    prior, decoder = tiny_model
    changed = tmp_path / "prior"
    shutil.copytree(prior, changed)
    index = json.loads((changed / "model_index.json").read_text())
    index["latent_mean"] = 7.0
    (changed / "model_index.json").write_text(json.dumps(index))
    gen = WuerstchenGenerator(changed, decoder, device="cpu", threads=1)
    await gen.start()
    try:
        assert gen.pipelines.prior_pipe.config.latent_mean == 7.0
        assert gen.pipelines.decoder_pipe.config.latent_dim_scale == pytest.approx(10.67)
    finally:
        await gen.stop()


async def test_device_and_dtype_settings():
    import torch

    from adapters.huggingface.torch_setup import default_threads, resolve_device, resolve_dtype

    cpu = resolve_device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("float32", cpu) == torch.float32
    with pytest.raises(GenerationError):
        resolve_dtype("int8", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(GenerationError):
            resolve_device("cuda")
    assert default_threads() >= 1


async def test_bfloat16_runs_end_to_end(tiny_model):
    """The GPU's dtype (bf16), on the CPU: every part gets the same dtype and the output is a PNG."""
    prior, decoder = tiny_model
    gen = WuerstchenGenerator(prior, decoder, device="cpu", dtype="bf16", threads=1)
    await gen.start()
    try:
        prior_pipe = gen.pipelines.prior_pipe
        assert prior_pipe.prior.dtype == prior_pipe.text_encoder.dtype
        [image] = await gen.generate(
            [GenerationRequest(prompt="x", width=128, height=128, seed=1, prior_steps=4, decoder_steps=2)]
        )
    finally:
        await gen.stop()
    with Image.open(io.BytesIO(image.png)) as decoded:
        assert decoded.size == (128, 128)
        assert np.asarray(decoded).std() > 1


def test_settings_reach_the_generator(monkeypatch):
    """The composition root passes the generator settings through, and rejects a bad layout value."""
    import pydantic

    from config.factories import wuerstchen_generator
    from config.settings import Settings

    monkeypatch.setenv("GENERATOR_BACKEND", "torch")  # the torch generator's settings (OpenVINO: test_openvino.py)
    monkeypatch.setenv("GENERATOR_COMPILE", "true")
    monkeypatch.setenv("GENERATOR_COMPILE_MODE", "max-autotune-no-cudagraphs")
    monkeypatch.setenv("GENERATOR_PNG_THREADS", "3")
    monkeypatch.setenv("GENERATOR_WARMUP", "1x1024x1024,8x1024x1024")
    expected = {"auto": None, "on": True, "off": False}
    for value, channels_last in expected.items():
        monkeypatch.setenv("GENERATOR_CHANNELS_LAST", value)
        gen = wuerstchen_generator(Settings())
        assert gen.channels_last is channels_last
        assert (gen.compile, gen.compile_mode, gen.png_threads) == (True, "max-autotune-no-cudagraphs", 3)
        assert gen.warmup == [(1, 1024, 1024), (8, 1024, 1024)]
        assert gen.batch_limit(1024, 1024) == 8
    monkeypatch.setenv("GENERATOR_CHANNELS_LAST", "sometimes")
    with pytest.raises(pydantic.ValidationError, match="generator_channels_last"):
        Settings()
    monkeypatch.delenv("GENERATOR_CHANNELS_LAST")
    monkeypatch.delenv("GENERATOR_COMPILE_MODE")
    assert wuerstchen_generator(Settings()).compile_mode == "reduce-overhead"
