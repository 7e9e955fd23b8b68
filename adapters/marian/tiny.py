"""A tiny random-weight MarianMT translation model, built offline with the real transformers classes.

``ensure_tiny_translator(folder)`` writes a folder in the layout of the hub's opus-mt models
(``config.json``, ``generation_config.json``, ``model.safetensors``, ``source.spm``,
``target.spm``, ``vocab.json``, ``tokenizer_config.json``), so that
:class:`adapters.marian.translator.MarianTranslator` loads it through the very code that loads
``Helsinki-NLP/opus-mt-ru-en``. The two SentencePiece models are trained here, from a few Russian
and English sentences, with the ``sentencepiece`` library (as Marian's are, on far more text).

The weights are random (fixed seed), so the "translations" are gibberish made of the vocabulary's
pieces; what is real is the plumbing: tokenizer, encoder-decoder, generation, decoding. It is
built once and reused afterwards.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from adapters.huggingface.tiny_build import TinyModelBuild

TINY_TRANSLATOR_VERSION = 1
_MARKER = "TINY_MARIAN.json"
SEED = 20240601

# The corpus of the tiny SentencePiece models: prompts as users write them, and English ones.
CORPUS = [
    "Закат над океаном",
    "Горный пейзаж на рассвете",
    "Кот-астронавт в открытом космосе, масляная живопись",
    "Маяк во время шторма, волны разбиваются о скалы",
    "Красный дом у реки, осенний лес вокруг",
    "Ёжик в тумане, акварель",
    "Старый город ночью, фонари и мокрая брусчатка",
    "Портрет девушки в стиле Ван Гога, яркие цвета",
    "Захід сонця над морем, ліс і річка",
    "a sunset over the ocean",
    "a mountain landscape at dawn",
    "a cat astronaut in open space, oil painting",
    "a lighthouse in a storm, waves crashing on the rocks",
    "a red house by the river, an autumn forest around it",
    "a hedgehog in the fog, watercolor",
    "an old town at night, street lamps and wet cobblestones",
    "a portrait of a girl in the style of Van Gogh, bright colors",
]
VOCAB_PIECES = 200  # per SentencePiece model (a limit the trainer may stay under)

TINY_CONFIG: dict[str, Any] = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "max_position_embeddings": 512,
    "activation_function": "swish",
    "scale_embedding": True,
    "share_encoder_decoder_embeddings": True,
}


def _train_spm(sentences: list[str], path: Path) -> list[str]:
    """Train a SentencePiece unigram model as Marian's (``</s>`` = 0, ``<unk>`` = 1, no BOS or
    padding pieces); write it to ``path``; return its pieces in id order."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=VOCAB_PIECES,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        num_threads=1,
        eos_id=0,
        unk_id=1,
        bos_id=-1,
        pad_id=-1,
        eos_piece="</s>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def _spm_pieces(path: Path) -> list[str]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(path))
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def build_tokenizer(target: Path):
    """Train the two SentencePiece models into ``target`` and return a ``MarianTokenizer`` on them
    with the joint vocabulary (``vocab.json``), padding last as in the opus-mt models."""
    from transformers import MarianTokenizer

    target.mkdir(parents=True, exist_ok=True)
    source_pieces = _train_spm([s for s in CORPUS if not s.isascii()], target / "source.spm")
    target_pieces = _train_spm([s for s in CORPUS if s.isascii()], target / "target.spm")
    vocab: dict[str, int] = {}
    for piece in ["</s>", "<unk>", *source_pieces, *target_pieces]:
        vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = len(vocab)
    (target / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return MarianTokenizer(
        str(target / "source.spm"),
        str(target / "target.spm"),
        str(target / "vocab.json"),
        source_lang="ru",
        target_lang="en",
        model_max_length=512,
    )


def _randomize(model, generator) -> None:
    """Random weights large enough that the output depends on the input (the library's own
    initialisation, std 0.02, gives nearly the same text for every input)."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=generator) * (1.5 / p.shape[-1] ** 0.5))
            elif "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))


def _build(target: Path) -> None:
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # no "Writing model shards" bars in a log
    try:
        _build_model(target)
    finally:
        if bars:
            transformers_logging.enable_progress_bar()


def _build_model(target: Path) -> None:
    import torch
    from transformers import MarianConfig, MarianMTModel

    tokenizer = build_tokenizer(target)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    config = MarianConfig(
        vocab_size=len(tokenizer),
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=pad,
        forced_eos_token_id=eos,
        **TINY_CONFIG,
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        model = MarianMTModel(config).eval()
        _randomize(model, torch.Generator().manual_seed(SEED))
        # Like a real ru-en model, it writes with the target (English) pieces only.
        english = set(_spm_pieces(target / "target.spm")) | {"</s>"}
        vocab = tokenizer.get_vocab()
        with torch.no_grad():
            model.final_logits_bias.fill_(-30.0)
            for piece in english:
                model.final_logits_bias[0, vocab[piece]] = 0.0
    finally:
        torch.random.set_rng_state(state)
    # As the opus-mt models: greedy or beam search never emits padding, at most 512 tokens.
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.max_length = 512
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


BUILD = TinyModelBuild(_build, marker=_MARKER, version=TINY_TRANSLATOR_VERSION, seed=SEED)


def ensure_tiny_translator(folder: str | Path) -> Path:
    """The tiny model in ``folder``, built first if it is missing or outdated (safe when several
    processes ask at once: each builds in a private folder and the first rename wins)."""
    return BUILD.ensure(folder)
