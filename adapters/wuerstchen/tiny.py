"""A tiny random-weight Würstchen v2, built offline with the real diffusers and transformers classes.

``build_tiny_model(folder)`` makes the two repositories the real model has on the Hugging Face hub,
in the same layout, so that :class:`adapters.wuerstchen.generator.WuerstchenGenerator` loads them
through the very code that loads ``warp-ai/wuerstchen-prior`` and ``warp-ai/wuerstchen``::

    folder/prior/     model_index.json, prior/, text_encoder/, tokenizer/, scheduler/
    folder/decoder/   model_index.json, decoder/, text_encoder/, tokenizer/, scheduler/, vqgan/

The weights are random (fixed seed), so the pictures are noise-like (the prior's output layer is
scaled so that it stays well-conditioned: see ``_condition_prior``), but every part of the model is
there: the CLIP tokenizer (a byte-level BPE vocabulary written here, nothing is downloaded), two
CLIP text encoders of different widths (ViT-bigG for the prior, ViT-H for the decoder in the real
model), the prior, the DiffNeXt decoder, the Paella VQGAN and the schedulers. A 256x256 image with
the default 29 + 12 steps takes well under a second on one CPU core; any multiple of 128 works.

``ensure_tiny_model(folder)`` builds it once and reuses it afterwards (safe when several processes
ask at the same time: each builds in a private folder and the first rename wins).
"""

from __future__ import annotations

import json
from pathlib import Path

from adapters.huggingface.tiny_build import TinyModelBuild

# Bump when the tiny architecture or its weights change: an old build is then rebuilt.
TINY_MODEL_VERSION = 3
_MARKER = "TINY_WUERSTCHEN.json"

SEED = 20240229
MAX_TOKENS = 77  # CLIP's context length, as in the real tokenizers

# Pipeline settings saved in model_index.json, as the hub repos have them.
PRIOR_PIPELINE_CONFIG = {"latent_mean": 42.0, "latent_std": 1.0, "resolution_multiple": 42.67}
DECODER_PIPELINE_CONFIG = {"latent_dim_scale": 10.67}

TINY_PRIOR_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_DECODER_TEXT = {"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_PRIOR = {"c_in": 16, "c": 32, "c_cond": 32, "c_r": 16, "depth": 2, "nhead": 2, "dropout": 0.0}
TINY_DECODER = {
    "c_in": 4,
    "c_out": 4,
    "c_r": 16,
    "patch_size": 2,
    "c_cond": 32,
    "c_hidden": [8, 16, 16, 16],
    "nhead": [-1, 2, 2, 2],
    "blocks": [1, 1, 1, 1],
    "level_config": ["CT", "CTA", "CTA", "CTA"],
    "inject_effnet": [False, True, True, True],
    "effnet_embd": 16,
    "clip_embd": 24,
    "kernel_size": 3,
    "dropout": 0.0,
}
TINY_VQGAN = {
    "in_channels": 3,
    "out_channels": 3,
    "up_down_scale_factor": 2,
    "levels": 2,
    "bottleneck_blocks": 1,
    "embed_dim": 16,
    "latent_channels": 4,
    "num_vq_embeddings": 32,
    "scale_factor": 0.3764,
}

# A few merges so that the tokenizer really does byte-pair encoding, not only single bytes.
_WORDS = ["the", "a", "of", "and", "cat", "dog", "red", "blue", "photo", "painting", "in", "on"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=False))


def tiny_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary in CLIP's format: every byte alone and word-final, a few merges
    for common words, and the two special tokens."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        parts = list(word)
        parts[-1] += "</w>"
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            merged = parts[0] + parts[1]
            if merged not in tokens:
                tokens.append(merged)
            parts = [merged, *parts[2:]]
    merges = list(dict.fromkeys(merges))
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def build_tokenizer():
    """A CLIP tokenizer on the tiny byte-level vocabulary (no download). Its ids are valid for the
    real text encoders too (their vocabulary is larger), which the benchmark relies on."""
    from transformers import CLIPTokenizer

    vocab, merges = tiny_vocab_and_merges()
    # transformers annotates merges as strings; the pairs are what its tokenizers backend takes.
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)  # type: ignore[arg-type]


def text_encoder_config(sizes: dict, vocab_size: int, bos: int, eos: int, pad: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=sizes["hidden_size"],
        hidden_act="gelu",
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        **sizes,
    )


def _text_encoder(tokenizer, sizes: dict):
    from transformers import CLIPTextModel

    config = text_encoder_config(
        sizes, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    return CLIPTextModel(config).eval()


def _randomize(module, generator, gain: float = 1.0) -> None:
    """Give every parameter a random value, including those that the diffusers classes start at
    zero (output convolutions, timestep mappers, response-norm and VQGAN gammas): with those at
    zero the picture would not depend on the prompt at all."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=generator) * (gain / fan_in**0.5))
            elif name.endswith("gammas"):  # Paella's residual mixing weights
                p.copy_(torch.rand(p.shape, generator=generator) * 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)


def _condition_prior(prior, scale: float = 0.1) -> None:
    """Keep the random prior well-conditioned, as a trained one is.

    ``WuerstchenPrior`` returns ``(x - a) / (|1 - b| + 1e-5)``, ``a`` and ``b`` being the two halves
    of its output convolution. With plain random weights ``b`` is about N(0, 1), so here and there
    it lies near 1 and the prior divides by almost zero: the latents reach 1e3-1e5 and the guided
    steps become chaotic, turning a last-bit rounding difference (a batch of 3 and a batch of 1 go
    through different BLAS kernels) into a different picture. A small ``b`` (its weights scaled
    down, no bias) keeps the divisor near 1 and the latents of the order of the noise; ``a``, which
    carries the prompt and the noise, keeps its random weights."""
    import torch

    out = prior.out[-1]
    half = out.out_channels // 2
    with torch.no_grad():
        out.weight[half:].mul_(scale)
        out.bias[half:].zero_()


def _write_model_index(folder: Path, class_name: str, components: dict[str, list[str]], config: dict) -> None:
    import diffusers

    index = {"_class_name": class_name, "_diffusers_version": diffusers.__version__, **config, **components}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _build(target: Path) -> None:
    import torch
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior

    # From its own module: mypy sees diffusers' top-level name as a placeholder without save_pretrained.
    from diffusers.schedulers.scheduling_ddpm_wuerstchen import DDPMWuerstchenScheduler

    generator = torch.Generator().manual_seed(SEED)
    torch_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        prior_dir, decoder_dir = target / "prior", target / "decoder"
        tokenizer = build_tokenizer()

        prior_text = _text_encoder(tokenizer, TINY_PRIOR_TEXT)
        prior = WuerstchenPrior(**TINY_PRIOR).eval()
        _randomize(prior, generator)
        _condition_prior(prior)
        tokenizer.save_pretrained(prior_dir / "tokenizer")
        prior_text.save_pretrained(prior_dir / "text_encoder")
        prior.save_pretrained(prior_dir / "prior", safe_serialization=True)
        DDPMWuerstchenScheduler().save_pretrained(prior_dir / "scheduler")
        # The hub repos name the library "wuerstchen", which diffusers 0.42 cannot resolve; the
        # loader must not depend on it, so the tiny model mirrors that too.
        _write_model_index(
            prior_dir,
            "WuerstchenPriorPipeline",
            {
                "prior": ["wuerstchen", "WuerstchenPrior"],
                "scheduler": ["diffusers", "DDPMWuerstchenScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
            },
            PRIOR_PIPELINE_CONFIG,
        )

        decoder_text = _text_encoder(tokenizer, TINY_DECODER_TEXT)
        decoder = WuerstchenDiffNeXt(**TINY_DECODER).eval()
        _randomize(decoder, generator)
        vqgan = PaellaVQModel(**TINY_VQGAN).eval()
        _randomize(vqgan, generator)
        with torch.no_grad():  # pictures centred on grey, not mostly clipped to black and white
            vqgan.out_block[0].weight.mul_(0.1)
            vqgan.out_block[0].bias.fill_(0.5)
        tokenizer.save_pretrained(decoder_dir / "tokenizer")
        decoder_text.save_pretrained(decoder_dir / "text_encoder")
        decoder.save_pretrained(decoder_dir / "decoder", safe_serialization=True)
        vqgan.save_pretrained(decoder_dir / "vqgan", safe_serialization=True)
        DDPMWuerstchenScheduler().save_pretrained(decoder_dir / "scheduler")
        _write_model_index(
            decoder_dir,
            "WuerstchenDecoderPipeline",
            {
                "decoder": ["wuerstchen", "WuerstchenDiffNeXt"],
                "scheduler": ["diffusers", "DDPMWuerstchenScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "vqgan": ["wuerstchen", "PaellaVQModel"],
            },
            DECODER_PIPELINE_CONFIG,
        )
    finally:
        torch.random.set_rng_state(torch_state)


BUILD = TinyModelBuild(_build, marker=_MARKER, version=TINY_MODEL_VERSION, seed=SEED)


def build_tiny_model(folder: str | Path) -> tuple[Path, Path]:
    """Build the tiny model into ``folder`` (replacing what is there) and return the prior and
    decoder repository folders, to pass as ``WuerstchenGenerator(prior, decoder)``."""
    folder = BUILD.rebuild(folder)
    return folder / "prior", folder / "decoder"


def ensure_tiny_model(folder: str | Path) -> tuple[Path, Path]:
    """Return the tiny model in ``folder``, building it first if it is missing or outdated."""
    folder = BUILD.ensure(folder)
    return folder / "prior", folder / "decoder"
