"""The OpenVINO backend of ``bench/wuerstchen_bench.py --backend openvino``.

It builds the benchmark's architecture (random weights, from a fixed seed per model), one model at
a time in float32, converts each to OpenVINO IR through the worker's own code
(:mod:`adapters.openvino.models`, :func:`adapters.openvino.pipelines.build_pipelines`) and lets the
torch module go before the next one is built: the real prior and decoder are 1B parameters each,
and holding all five in float32 with their OpenVINO copies would pass 20 GiB. The IR and the
compiled-model cache go to ``--ov-dir``, keyed like the worker's (the architecture, the seed, the
weight format and the versions), so a second run neither converts nor compiles again; the
conversion and compilation times are reported either way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from adapters.wuerstchen import tiny

SEED = 1234  # the random weights' seed: the same weights (and so the same IR key) on every run


def model_builders(arch: Any) -> dict[str, Any]:
    """Constructors of the five models of ``arch`` (the bench's ``build_models``, one at a time)."""
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
    from transformers import CLIPTextModel

    tok = tiny.build_tokenizer()
    ids = dict(bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id)
    return {
        "prior_text": lambda: CLIPTextModel(tiny.text_encoder_config(arch.prior_text, arch.vocab_size, **ids)),
        "prior": lambda: WuerstchenPrior(**arch.prior),
        "decoder_text": lambda: CLIPTextModel(tiny.text_encoder_config(arch.decoder_text, arch.vocab_size, **ids)),
        "decoder": lambda: WuerstchenDiffNeXt(**arch.decoder),
        "vqgan": lambda: PaellaVQModel(**arch.vqgan),
    }


def build(arch: Any, dtype: Any, int8_weights: bool, ov_dir: str, threads: int) -> tuple[Any, dict[str, Any]]:
    """The adapter's pipelines over OpenVINO models of ``arch``, and what it took: conversions,
    compilations (filled in as shapes compile), seconds, the inference precision."""
    import torch
    from diffusers import DDPMWuerstchenScheduler

    from adapters.openvino.generator import precision_of
    from adapters.openvino.models import IrStore, Precision
    from adapters.openvino.pipelines import HeavyPart, build_pipelines
    from adapters.wuerstchen.model_files import skip_decoder_weight_init

    precision = Precision(precision_of(dtype), int8_weights)
    store = IrStore(Path(ov_dir), precision, threads)
    builders = model_builders(arch)
    configs: dict[str, Any] = {}

    def loader(name: str) -> Any:
        def load() -> Any:
            torch.manual_seed(SEED)
            with torch.device("cpu"), skip_decoder_weight_init():
                module = builders[name]()
            return module.eval().requires_grad_(False)

        return load

    # The configs the pipelines read (c_in, patch_size, scale_factor ...), from meta-device models.
    with torch.device("meta"), skip_decoder_weight_init():
        for name in ("prior", "decoder", "vqgan"):
            configs[name] = builders[name]().config
    source = {
        "arch": arch.name,
        "seed": SEED,
        "configs": [arch.prior, arch.decoder, arch.prior_text, arch.decoder_text, arch.vqgan],
    }
    parts = {
        name: HeavyPart({**source, "part": name}, loader(name), configs.get(name))
        for name in ("prior_text", "prior", "decoder_text", "decoder", "vqgan")
    }
    started = time.perf_counter()
    tokenizer = tiny.build_tokenizer()
    pipelines = build_pipelines(
        store,
        parts,
        prior_tokenizer=tokenizer,
        prior_scheduler=DDPMWuerstchenScheduler(),
        decoder_tokenizer=tokenizer,
        decoder_scheduler=DDPMWuerstchenScheduler(),
    )
    info = {
        "ov_precision": precision.inference,
        "ov_weights": precision.weight_format,
        "ov_build_s": time.perf_counter() - started,
        "counters": store.counters,
    }
    return pipelines, info


def describe(info: dict[str, Any]) -> str:
    counters = info["counters"]
    return (
        f"OpenVINO {info['ov_precision']} (weights {info['ov_weights']}): converted "
        f"{', '.join(counters.converted) or 'nothing'} in {counters.convert_seconds:.1f}s; compiled "
        f"{len(counters.compiled)} shapes, {len(counters.from_cache)} from the cache, "
        f"in {counters.compile_seconds:.1f}s"
    )
