"""The tiny random-weight model: the hub layout, built once and reused, an offline tokenizer."""

from __future__ import annotations

import json

from adapters.wuerstchen.model_files import DECODER_PARTS, PRIOR_PARTS
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


def _picture(generator, noise, seed: int):
    """The tiny model's picture of one prompt from the prior's initial ``noise`` (the default 29
    guided prior steps and 12 decoder steps at 256x256), as floats in 0..255, and the largest
    prior latent met on the way."""
    import torch

    from adapters.wuerstchen.pipelines import prior_timesteps

    largest = [0.0]

    def watch(pipe, i, t, tensors):
        largest[0] = max(largest[0], float(tensors["latents"].abs().max()))
        return {}

    prior, decoder = generator.pipelines
    with torch.inference_mode():
        embeddings = prior(
            prompt=["a red cat"],
            negative_prompt=[""],
            height=256,
            width=256,
            timesteps=prior_timesteps(29),
            guidance_scale=4.0,
            latents=noise,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
            callback_on_step_end=watch,
            callback_on_step_end_tensor_inputs=["latents"],
        ).image_embeddings
        images = decoder(
            image_embeddings=embeddings,
            prompt=["a red cat"],
            num_inference_steps=12,
            guidance_scale=0.0,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
        ).images
    return images.clamp(0, 1) * 255, largest[0]


async def test_the_tiny_model_keeps_a_rounding_difference_a_rounding_difference(tiny_generator):
    """A batch and a single request go through different BLAS kernels, which round differently in
    the last bits. The contract test "a batch matches the same requests made one by one" checks
    the batching only if the model does not blow such differences up, as a trained model does not:
    one part in 10^6 more of the prior's initial noise leaves the picture as it was (with plain
    random weights the prior divided by almost zero and made another picture of it), while
    another noise makes another picture."""
    import math

    import torch

    prior = tiny_generator.pipelines.prior_pipe
    side = math.ceil(256 / prior.config.resolution_multiple)
    shape = (1, prior.prior.config.c_in, side, side)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    picture, largest = _picture(tiny_generator, noise, seed=3)
    nudged, _ = _picture(tiny_generator, noise * (1 + 1e-6), seed=3)
    other, _ = _picture(tiny_generator, torch.randn(shape, generator=torch.Generator().manual_seed(4)), seed=3)
    assert largest < 100, f"the prior's latents reach {largest:.3g} (the noise is about 1)"
    assert float((picture - nudged).abs().mean()) < 0.05
    assert float((picture - other).abs().mean()) > 5
