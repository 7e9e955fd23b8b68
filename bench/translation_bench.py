#!/usr/bin/env python
"""Benchmark of prompt translation with MarianMT at the real opus-mt-ru-en size, random weights.

The speed of a translation model does not depend on its weight values, so the real architecture of
``Helsinki-NLP/opus-mt-ru-en`` is built from its configuration (d_model 512, 6 encoder and 6
decoder layers, 8 heads, feed-forward 2048, a joint vocabulary of 62518 pieces, shared embeddings:
76M parameters), saved with ``save_pretrained`` and loaded through the adapter's own loader
(``MarianTranslator``), on the CPU with fp32, as a worker without a GPU runs it.

What it prints, side by side for each dtype (fp32, bf16, and as an experiment int8: torch's dynamic
quantisation of the linear layers, which the adapter does not offer) and decoding (greedy, beam
search), each measured in a fresh process:
- seconds per prompt when one prompt is translated alone, and per batch of 8 (and per prompt in
  it), median of ``--repeats`` calls after a warm-up call;
- the memory the translator adds to a worker: resident memory (RSS) before loading it (torch and
  transformers already imported, as in a worker), after loading, after the timed calls, and the
  process's peak.

Random weights seldom emit the end token, so the output length is fixed instead: every output has
exactly ``--new-tokens`` tokens (``min_new_tokens`` = ``max_new_tokens``). The defaults are a
realistic Russian prompt of ``--input-tokens`` 20 SentencePiece tokens (about 12 words, e.g.
"Горный пейзаж на рассвете, туман над озером, старый деревянный дом, масляная живопись") and
24 output tokens (~1.2x the input, about what its English translation takes). The text is fed as
token ids of that length; tokenising and decoding (sub-millisecond) are timed separately through
the real tokenizer.

    python bench/translation_bench.py                     # 2 threads; fp32, bf16, int8; greedy and 4 beams
    python bench/translation_bench.py --threads 1 --beams 1 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# opus-mt-ru-en's config.json (the parts that shape the computation).
OPUS_MT_RU_EN: dict[str, Any] = dict(
    vocab_size=62518,
    d_model=512,
    encoder_layers=6,
    decoder_layers=6,
    encoder_attention_heads=8,
    decoder_attention_heads=8,
    encoder_ffn_dim=2048,
    decoder_ffn_dim=2048,
    max_position_embeddings=512,
    activation_function="swish",
    scale_embedding=True,
    share_encoder_decoder_embeddings=True,
    pad_token_id=62517,
    decoder_start_token_id=62517,
    eos_token_id=0,
)
PROMPT = "Горный пейзаж на рассвете, туман над озером, старый деревянный дом, масляная живопись"


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_folder(folder: Path) -> None:
    """The real-size model with random weights and a tokenizer whose vocabulary has the real size
    (the tiny SentencePiece models, the joint vocabulary padded to 62518 pieces)."""
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    from adapters.marian.tiny import build_tokenizer

    build_tokenizer(folder)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    del vocab["<pad>"]
    while len(vocab) < OPUS_MT_RU_EN["vocab_size"] - 1:
        vocab[f"▁filler{len(vocab)}"] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = MarianTokenizer(
        str(folder / "source.spm"),
        str(folder / "target.spm"),
        str(folder / "vocab.json"),
        source_lang="ru",
        target_lang="en",
        model_max_length=512,
    )
    assert len(tokenizer) == OPUS_MT_RU_EN["vocab_size"], len(tokenizer)
    torch.manual_seed(0)
    model = MarianMTModel(MarianConfig(**OPUS_MT_RU_EN)).eval()
    model.generation_config.bad_words_ids = [[OPUS_MT_RU_EN["pad_token_id"]]]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(folder: Path, dtype: str, args: argparse.Namespace) -> dict:
    """In a fresh process: load through ``MarianTranslator``, time the calls, read the memory."""
    import torch
    import transformers  # noqa: F401 - a worker has it loaded already

    from adapters.marian.translator import MarianTranslator

    torch.set_num_threads(args.threads)
    gc.collect()
    before = rss_mib()
    load_dtype = "fp32" if dtype == "int8" else dtype
    translator = MarianTranslator(folder, device="cpu", dtype=load_dtype, threads=args.threads, local_files_only=True)
    started = time.perf_counter()
    translator.load()
    if dtype == "int8":  # an experiment, not an adapter option: torch.ao.quantization is deprecated
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            translator._model = torch.ao.quantization.quantize_dynamic(
                translator.model, {torch.nn.Linear}, dtype=torch.qint8
            )
        gc.collect()
    load_s = time.perf_counter() - started
    after = rss_mib()
    model, tokenizer = translator.model, translator.tokenizer
    out: dict = {
        "dtype": dtype,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "load_s": load_s,
        "rss_before_mib": before,
        "rss_after_mib": after,
        "threads": torch.get_num_threads(),
        "tokenize_ms": 1000
        * timed(lambda: tokenizer([PROMPT] * args.batch, return_tensors="pt", padding=True), args.repeats),
        "runs": [],
    }
    generator = torch.Generator().manual_seed(1)
    for beams in (int(b) for b in args.beams.split(",")):
        for batch in (1, args.batch):
            ids = torch.randint(2, 60000, (batch, args.input_tokens), generator=generator)
            ids[:, -1] = OPUS_MT_RU_EN["eos_token_id"]
            mask = torch.ones_like(ids)

            def run(ids=ids, mask=mask, beams=beams):
                with torch.inference_mode():
                    result = model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        num_beams=beams,
                        max_length=None,
                        max_new_tokens=args.new_tokens,
                        min_new_tokens=args.new_tokens,
                    )
                assert result.shape[1] == args.new_tokens + 1, result.shape  # + the start token

            seconds = timed(run, args.repeats)
            out["runs"].append({"beams": beams, "batch": batch, "seconds": seconds})
            print(
                f"  {dtype}, beams {beams}, batch {batch}: {seconds:.3f}s per call, {seconds / batch:.3f}s per prompt",
                file=sys.stderr,
                flush=True,
            )
    gc.collect()
    out["rss_end_mib"] = rss_mib()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beams", default="1,4", help="comma-separated beam widths (1: greedy)")
    p.add_argument(
        "--dtypes",
        default="fp32,bf16,int8",
        help="comma-separated: fp32, bf16, int8 (torch dynamic quantisation of the fp32 model: an experiment)",
    )
    p.add_argument("--input-tokens", type=int, default=20)
    p.add_argument("--new-tokens", type=int, default=24)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--build", help=argparse.SUPPRESS)  # child: build the model into this folder
    p.add_argument("--measure", help=argparse.SUPPRESS)  # child: measure the model in this folder
    p.add_argument("--dtype", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.build:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        build_folder(Path(args.build))
        return 0
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.dtype, args)))
        return 0

    passed = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="marian-bench-") as tmp:
        folder = Path(tmp) / "opus-mt-ru-en-random"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", str(folder)], check=True)
        print(
            f"opus-mt-ru-en architecture with random weights built in {time.perf_counter() - started:.1f}s", flush=True
        )
        results = []
        for dtype in args.dtypes.split(","):
            child = subprocess.run(
                [sys.executable, __file__, *passed, "--measure", str(folder), "--dtype", dtype],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))

    first = results[0]
    print(
        f"\n{first['params_m']:.1f}M parameters, CPU, {first['threads']} threads; input "
        f"{args.input_tokens} tokens, every output exactly {args.new_tokens} tokens; median of {args.repeats}\n"
    )
    print("| dtype | decoding | 1 prompt alone | batch of 8 | per prompt in the batch |")
    print("|---|---|---|---|---|")
    for r in results:
        for beams in sorted({run["beams"] for run in r["runs"]}):
            one = next(x["seconds"] for x in r["runs"] if x["beams"] == beams and x["batch"] == 1)
            many = next(x["seconds"] for x in r["runs"] if x["beams"] == beams and x["batch"] == args.batch)
            name = "greedy" if beams == 1 else f"{beams} beams"
            print(f"| {r['dtype']} | {name} | {one:.3f} s | {many:.3f} s | {many / args.batch:.3f} s |")
    print()
    print(
        "| dtype | load | RSS before load | after load | after the runs | added (end - before) | peak RSS "
        "| tokenising 8 prompts |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['dtype']} | {r['load_s']:.2f} s | {r['rss_before_mib']:.0f} MiB | {r['rss_after_mib']:.0f} MiB | "
            f"{r['rss_end_mib']:.0f} MiB | +{r['rss_end_mib'] - r['rss_before_mib']:.0f} MiB | "
            f"{r['peak_rss_mib']:.0f} MiB | {r['tokenize_ms']:.2f} ms |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
