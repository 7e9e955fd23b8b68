#!/usr/bin/env python
"""Bytes of the model files a worker downloads, measured by writing them.

Nothing is downloaded: each model is built at its real architecture with random weights (the
sizes of ``bench/wuerstchen_bench.py`` and ``bench/translation_bench.py``), written with
``save_pretrained`` as safetensors into a temporary folder in the hub's layout, and the bytes on
disk are counted, then the files are deleted. A file's size depends on the tensors' shapes and
dtype, not on their values, so that is the size of the download.

What a worker fetches (``adapters/wuerstchen/model_files.py``, ``adapters/marian/translator.py``):
from ``WUERSTCHEN_PRIOR`` (``warp-ai/wuerstchen-prior``) ``model_index.json`` and the ``*.json``,
``*.txt`` and ``*.safetensors`` files of ``prior/``, ``text_encoder/``, ``tokenizer/`` and
``scheduler/``; from ``WUERSTCHEN_DECODER`` (``warp-ai/wuerstchen``) the same of ``decoder/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/`` and ``vqgan/``; from
``PROMPT_TRANSLATION_MODEL`` (``Helsinki-NLP/opus-mt-ru-en``) ``*.json``, ``*.spm`` and
``*.safetensors``. No dtype variant is asked for, so the hub's plain files come, in the dtype the
hub stores (``--dtype``, float32 by default: the loader converts to the worker's dtype after
loading). Written here: the five Würstchen models and their configurations, the schedulers'
configurations, and MarianMT's weights and configuration. Not covered: the CLIP tokenizers' real
vocabularies (the tiny test tokenizer is written instead) and the real SentencePiece models (the
tiny ones, padded to the real vocabulary size, are written); those are a few MB. The NudeNet image
check's ONNX model is not downloaded: it ships inside the ``nudenet`` package, in the image; its
size is read from the installed package.

Real size: about 13 GB written, and up to ~9 GB of memory for the largest model (run it under the
shared bench lock). ``--tiny`` does the same with the tiny test models (seconds).

    python bench/model_footprint.py --json out/footprint.json
    python bench/model_footprint.py --tiny
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def wuerstchen_parts(tiny: bool) -> dict[str, Callable[[], Any]]:
    """Builders of the models of the two hub repositories, by their path in the repository."""
    import torch
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
    from transformers import CLIPTextModel

    from adapters.wuerstchen import tiny as tiny_models
    from adapters.wuerstchen.model_files import skip_decoder_weight_init
    from bench.wuerstchen_bench import REAL, TINY

    arch = TINY if tiny else REAL
    tok = tiny_models.build_tokenizer()
    ids = dict(bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id)

    def text(config: dict[str, Any]) -> Callable[[], Any]:
        return lambda: CLIPTextModel(tiny_models.text_encoder_config(config, arch.vocab_size, **ids))

    def decoder() -> Any:
        with skip_decoder_weight_init(), torch.device("cpu"):
            return WuerstchenDiffNeXt(**arch.decoder)

    return {
        "prior/prior": lambda: WuerstchenPrior(**arch.prior),
        "prior/text_encoder": text(arch.prior_text),
        "decoder/decoder": decoder,
        "decoder/text_encoder": text(arch.decoder_text),
        "decoder/vqgan": lambda: PaellaVQModel(**arch.vqgan),
    }


def measure(tiny: bool, dtype_name: str, keep: Path | None = None) -> dict[str, Any]:
    import torch
    from diffusers import DDPMWuerstchenScheduler

    dtype = getattr(torch, dtype_name)
    files: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        root = Path(tmp)
        for name, build in wuerstchen_parts(tiny).items():
            started = time.perf_counter()
            model = torch.nn.Module.to(build(), dtype=dtype)
            params = sum(p.numel() for p in model.parameters())
            folder = root / name
            model.save_pretrained(folder, safe_serialization=True)
            del model
            gc.collect()
            files[name] = {
                "bytes": folder_bytes(folder),
                "params": params,
                "bytes_per_param": folder_bytes(folder) / params,
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(f"{name}: {files[name]['bytes'] / 1e9:.3f} GB ({params / 1e6:.1f}M parameters)", flush=True)
            for other in folder.glob("*.safetensors"):
                other.unlink()  # counted; the disk is not kept busy
        for repo in ("prior", "decoder"):
            folder = root / repo / "scheduler"
            DDPMWuerstchenScheduler().save_config(folder)  # type: ignore[attr-defined]
            files[f"{repo}/scheduler"] = {"bytes": folder_bytes(folder)}
        files["translator"] = translator(root / "translator", tiny)
        print(f"translator: {files['translator']['bytes'] / 1e9:.3f} GB", flush=True)
    nudenet = nudenet_bytes()
    downloaded = sum(f["bytes"] for f in files.values())
    return {
        "tiny": tiny,
        "dtype": dtype_name,
        "files": files,
        "downloaded_bytes": downloaded,
        "wuerstchen_bytes": sum(f["bytes"] for n, f in files.items() if n != "translator"),
        "nudenet_in_image_bytes": nudenet,
        "not_covered": "CLIP tokenizers' vocabularies, MarianMT's real SentencePiece models (a few MB)",
    }


def translator(folder: Path, tiny: bool) -> dict[str, Any]:
    """MarianMT's files: the real size (bench/translation_bench.py) or the tiny test model."""
    if tiny:
        from adapters.marian.tiny import ensure_tiny_translator

        ensure_tiny_translator(folder)
    else:
        from bench.translation_bench import build_folder

        build_folder(folder)
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return {"bytes": folder_bytes(folder), "weights_bytes": weights}


def nudenet_bytes() -> int | None:
    try:
        import nudenet
    except ImportError:
        return None
    return sum(p.stat().st_size for p in Path(nudenet.__file__).parent.glob("*.onnx"))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test models (seconds)")
    parser.add_argument("--dtype", default="float32", help="the dtype the hub stores (torch name)")
    parser.add_argument("--tmp", default=None, help="folder for the temporary files (default: the system's)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    result = measure(args.tiny, args.dtype, Path(args.tmp) if args.tmp else None)
    print(
        f"model cache a worker downloads ({args.dtype}): {result['downloaded_bytes'] / 1e9:.2f} GB "
        f"(Würstchen {result['wuerstchen_bytes'] / 1e9:.2f} GB, translator "
        f"{result['files']['translator']['bytes'] / 1e9:.3f} GB); NudeNet's ONNX model inside the image: "
        f"{(result['nudenet_in_image_bytes'] or 0) / 1e6:.1f} MB; not covered: {result['not_covered']}",
        flush=True,
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
