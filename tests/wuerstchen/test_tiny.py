"""The tiny random-weight model: the hub layout, built once and reused, an offline tokenizer."""

from __future__ import annotations

import json

from adapters.wuerstchen.generator import DECODER_PARTS, PRIOR_PARTS
from adapters.wuerstchen.tiny import ensure_tiny_model


def test_the_tiny_model_has_the_hub_layout(tiny_model):
    prior, decoder = tiny_model
    for folder, parts in ((prior, PRIOR_PARTS), (decoder, DECODER_PARTS)):
        assert (folder / "model_index.json").is_file()
        for part in parts:
            assert (folder / part).is_dir(), part
    # Like the hub repos, model_index.json names a library diffusers 0.42 cannot resolve.
    assert json.loads((prior / "model_index.json").read_text())["prior"] == ["wuerstchen", "WuerstchenPrior"]
    assert (prior / "prior" / "diffusion_pytorch_model.safetensors").is_file()
    assert (decoder / "vqgan" / "diffusion_pytorch_model.safetensors").is_file()


def test_ensure_reuses_a_built_model(tiny_model):
    prior, decoder = tiny_model
    weights = prior / "prior" / "diffusion_pytorch_model.safetensors"
    before = weights.stat().st_mtime_ns
    assert ensure_tiny_model(prior.parent) == (prior, decoder)
    assert weights.stat().st_mtime_ns == before


def test_the_offline_tokenizer_does_byte_pair_encoding(tiny_model):
    from transformers import CLIPTokenizer

    prior, _ = tiny_model
    tokenizer = CLIPTokenizer.from_pretrained(prior / "tokenizer")
    ids = tokenizer("The cat").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert len(ids) == 4  # "the" and "cat" are merged words
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the cat"
    assert tokenizer.model_max_length == 77
    assert len(tokenizer("Привет, 猫!").input_ids) > 2  # any text: byte-level
