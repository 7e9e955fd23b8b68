"""Hub models are loaded from safetensors only, at a pinned revision, through the real loaders on
the tiny models: the tiny builders write safetensors; a pickle never loads (a folder holding only
``*.bin`` is refused by name, and a ``.bin`` beside the safetensors file is never read); a hub id
loads at the revision the settings pin, and an unknown revision is a clear one-line error."""

from __future__ import annotations

import shutil

import pytest

from adapters.huggingface.hub import PICKLE_PATTERNS
from adapters.marian.translator import MarianTranslator
from adapters.wuerstchen.generator import WuerstchenGenerator
from adapters.wuerstchen.model_files import WEIGHT_PARTS, find_repos, load_part
from config.settings import Settings
from domain.errors import ModelNotFound
from domain.models import GenerationRequest
from tests.wuerstchen.conftest import tiny_model  # noqa: F401  (the session fixture)
from tests.wuerstchen.test_loading import SHA, assert_one_clear_line, fake_hub_cache

pytestmark = pytest.mark.slow


def pickles_in(folder) -> list[str]:
    return [p.name for pattern in PICKLE_PATTERNS for p in folder.rglob(pattern)]


def to_pickle(folder, name: str, pickle_name: str) -> None:
    """Replace ``folder/name`` (safetensors) by the same weights saved as a torch pickle."""
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(folder / name), folder / pickle_name)
    (folder / name).unlink()


def test_the_tiny_builders_write_safetensors_and_no_pickle(tiny_model, tiny_marian):  # noqa: F811
    prior, decoder = tiny_model
    for repo, parts in ((prior, ("prior", "text_encoder")), (decoder, ("decoder", "text_encoder", "vqgan"))):
        assert set(parts) <= WEIGHT_PARTS
        for part in parts:
            assert list((repo / part).glob("*.safetensors")), f"{repo.name}/{part}"
        assert pickles_in(repo) == []
    assert (tiny_marian / "model.safetensors").is_file() and pickles_in(tiny_marian) == []


async def test_a_wuerstchen_part_with_a_pickle_only_is_refused_by_name(tiny_model, tmp_path):  # noqa: F811
    prior, decoder = tiny_model
    pickled = tmp_path / "prior"
    shutil.copytree(prior, pickled)
    to_pickle(pickled / "prior", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    gen = WuerstchenGenerator(pickled, decoder, device="cpu", threads=1, local_files_only=True)
    with pytest.raises(ModelNotFound) as refused:
        await gen.start()
    assert_one_clear_line(
        refused.value, "prior/diffusion_pytorch_model.bin", "pickle", "refused", "WUERSTCHEN_PRIOR", ".safetensors"
    )
    assert not gen.started


def test_a_pickle_is_not_loaded_even_where_the_library_would_fall_back_to_it(tiny_model, tmp_path):  # noqa: F811
    """A part whose safetensors file is not the one the loader looks for, with a pickle beside
    it: diffusers on its own falls back to the pickle ("Defaulting to unsafe serialization");
    with ``use_safetensors=True`` the part is refused instead."""
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenPrior

    prior, decoder = tiny_model
    decoy = tmp_path / "prior"
    shutil.copytree(prior, decoy)
    to_pickle(decoy / "prior", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    shutil.copy(
        prior / "prior" / "diffusion_pytorch_model.safetensors",
        decoy / "prior" / "diffusion_pytorch_model.fp16.safetensors",
    )
    assert WuerstchenPrior.from_pretrained(str(decoy), subfolder="prior", local_files_only=True)  # the fallback
    prior_repo, _ = find_repos(decoy, decoder, local_files_only=True)
    with pytest.raises(ModelNotFound) as refused:
        load_part(prior_repo, "prior", WuerstchenPrior.from_pretrained)
    assert_one_clear_line(refused.value, "could not load prior/", "WUERSTCHEN_PRIOR")


def test_a_marian_folder_with_a_pickle_only_is_refused_by_name(tiny_marian, tmp_path):
    pickled = tmp_path / "marian"
    shutil.copytree(tiny_marian, pickled)
    to_pickle(pickled, "model.safetensors", "pytorch_model.bin")
    with pytest.raises(ModelNotFound) as refused:
        MarianTranslator(pickled, device="cpu", local_files_only=True).load()
    text = str(refused.value)
    assert "\n" not in text and "pytorch_model.bin" in text and "pickle" in text
    assert "PROMPT_TRANSLATION_MODEL" in text and "PROMPT_TRANSLATION_REVISION" in text


async def test_wuerstchen_loads_at_the_pinned_revision_and_refuses_an_unknown_one(tiny_model, tmp_path):  # noqa: F811
    prior, decoder = tiny_model
    cache = tmp_path / "hf-cache"
    fake_hub_cache(cache, "acme/tiny-wuerstchen-prior", prior)
    fake_hub_cache(cache, "acme/tiny-wuerstchen", decoder)
    pinned = WuerstchenGenerator(
        "acme/tiny-wuerstchen-prior",
        "acme/tiny-wuerstchen",
        device="cpu",
        threads=1,
        local_files_only=True,
        cache_dir=cache,
        prior_revision=SHA,
        decoder_revision=SHA,
    )
    await pinned.start()
    try:
        request = GenerationRequest(prompt="a cat", width=128, height=128, seed=5, prior_steps=2, decoder_steps=2)
        [image] = await pinned.generate([request])
        assert image.png.startswith(b"\x89PNG")
    finally:
        await pinned.stop()

    unknown = WuerstchenGenerator(
        "acme/tiny-wuerstchen-prior",
        "acme/tiny-wuerstchen",
        device="cpu",
        threads=1,
        local_files_only=True,
        cache_dir=cache,
        prior_revision="v9.9",
    )
    with pytest.raises(ModelNotFound) as refused:
        await unknown.start()
    assert_one_clear_line(refused.value, "'acme/tiny-wuerstchen-prior'", "'v9.9'", "WUERSTCHEN_PRIOR_REVISION")


def test_marian_loads_at_the_pinned_revision_and_refuses_an_unknown_one(tiny_marian, tmp_path):
    cache = tmp_path / "hf-cache"
    fake_hub_cache(cache, "acme/tiny-opus-mt", tiny_marian)
    pinned = MarianTranslator("acme/tiny-opus-mt", device="cpu", local_files_only=True, cache_dir=cache, revision=SHA)
    pinned.load()
    assert pinned.model is not None
    with pytest.raises(ModelNotFound) as refused:
        MarianTranslator(
            "acme/tiny-opus-mt", device="cpu", local_files_only=True, cache_dir=cache, revision="v9.9"
        ).load()
    assert "'v9.9'" in str(refused.value)


def test_the_revision_settings_reach_the_adapters():
    from config.factories import marian_translator, wuerstchen_generator

    settings = Settings(
        _env_file=None,
        generator="wuerstchen",
        wuerstchen_prior_revision="a" * 40,
        wuerstchen_decoder_revision="v2.0",
        prompt_translation_revision="b" * 40,
    )
    generator = wuerstchen_generator(settings)
    assert (generator.prior_revision, generator.decoder_revision) == ("a" * 40, "v2.0")
    assert marian_translator(settings).revision == "b" * 40  # type: ignore[attr-defined]
    defaults = Settings(_env_file=None)
    assert {
        defaults.wuerstchen_prior_revision,
        defaults.wuerstchen_decoder_revision,
        defaults.prompt_translation_revision,
    } == {"main"}
