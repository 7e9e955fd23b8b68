"""The torch adapter's pipelines with OpenVINO models in place of the torch modules.

The diffusers pipelines (``WuerstchenPriorPipeline`` and the batch-fixed decoder pipeline of
:mod:`adapters.wuerstchen.pipelines`) keep their tokenizers, schedulers, guidance, batching and
per-request seeds; only their five heavy modules are the wrappers of :mod:`adapters.openvino.models`.
So the same request gives the same picture as on the torch path, up to the numeric noise of
another kernel library (and of bf16, where it runs in bf16).

Each heavy part is converted (or found converted) one at a time, and the torch module is let go
before the next one loads: at the real size the five weigh 12 GiB in float32, and converting
them all at once would hold them all, with their OpenVINO copies, at the same time.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.openvino.models import (
    EXAMPLES,
    IrStore,
    OvDecoder,
    OvPrior,
    OvTextEncoder,
    OvVqgan,
    weights_signature,
)
from adapters.wuerstchen.model_files import (
    ModelRepo,
    _load_decoder,
    load_part,
    pipeline_config,
)
from adapters.wuerstchen.pipelines import DECODER_DEFAULTS, PRIOR_DEFAULTS, Pipelines, batch_decoder_class

log = logging.getLogger(__name__)


@dataclass
class HeavyPart:
    """One model to run on OpenVINO: what its converted form depends on (``source``), how to load
    its torch module when it must be converted, and its config (the pipelines read a few values)."""

    source: dict[str, Any]
    load: Callable[[], Any]
    config: Any


def build_pipelines(
    store: IrStore,
    parts: dict[str, HeavyPart],
    *,
    prior_tokenizer: Any,
    prior_scheduler: Any,
    decoder_tokenizer: Any,
    decoder_scheduler: Any,
    prior_config: dict[str, float] | None = None,
    decoder_config: dict[str, float] | None = None,
) -> Pipelines:
    """The pipelines over OpenVINO models of ``parts`` (converted now where the store lacks them)."""
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenPriorPipeline

    models: dict[str, Any] = {}
    for name in ("prior_text", "prior", "decoder_text", "decoder", "vqgan"):
        part = parts[name]
        models[name] = store.part(name, part.source, part.load, EXAMPLES[name])
        gc.collect()  # the torch module, if one was loaded to convert, goes before the next loads
    # Any: diffusers registers a pipeline's components at run time.
    prior_pipe: Any = WuerstchenPriorPipeline(
        tokenizer=prior_tokenizer,
        text_encoder=OvTextEncoder(models["prior_text"]),
        prior=OvPrior(models["prior"], parts["prior"].config),
        scheduler=prior_scheduler,
        **(prior_config or PRIOR_DEFAULTS),
    )
    decoder_pipe = batch_decoder_class()(
        tokenizer=decoder_tokenizer,
        text_encoder=OvTextEncoder(models["decoder_text"]),
        decoder=OvDecoder(models["decoder"], parts["decoder"].config),
        scheduler=decoder_scheduler,
        vqgan=OvVqgan(models["vqgan"], parts["vqgan"].config),
        **(decoder_config or DECODER_DEFAULTS),
    )
    for pipe in (prior_pipe, decoder_pipe):
        pipe.set_progress_bar_config(disable=True)
    return Pipelines(prior_pipe, decoder_pipe)


def _config(loader_class: Any, repo: ModelRepo, part: str) -> Any:
    """The part's config.json, with attribute access (``config.c_in``) as the modules give it."""
    from diffusers.configuration_utils import FrozenDict

    config = loader_class.load_config(str(repo.path), subfolder=part, local_files_only=True)
    return FrozenDict(config)


def _source(repo: ModelRepo, part: str) -> dict[str, Any]:
    return {"repo": repo.describe(), "files": weights_signature(repo.path / part)}


def load_pipelines(prior_repo: ModelRepo, decoder_repo: ModelRepo, store: IrStore) -> Pipelines:
    """The two repositories' pipelines on OpenVINO: tokenizers, schedulers and configs read from
    the repositories; the heavy parts from the store, converted from float32 torch modules
    (loaded by the torch adapter's own loaders) only where the store lacks them."""
    import torch
    from diffusers import DDPMWuerstchenScheduler
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
    from transformers import CLIPTextModel, CLIPTokenizer

    f32 = torch.float32

    def text(repo: ModelRepo) -> HeavyPart:
        return HeavyPart(
            _source(repo, "text_encoder"),
            lambda: load_part(repo, "text_encoder", CLIPTextModel.from_pretrained, dtype=f32),
            None,
        )

    parts = {
        "prior_text": text(prior_repo),
        "prior": HeavyPart(
            _source(prior_repo, "prior"),
            lambda: load_part(prior_repo, "prior", WuerstchenPrior.from_pretrained, torch_dtype=f32),
            _config(WuerstchenPrior, prior_repo, "prior"),
        ),
        "decoder_text": text(decoder_repo),
        "decoder": HeavyPart(
            _source(decoder_repo, "decoder"),
            lambda: load_part(decoder_repo, "decoder", _load_decoder, torch_dtype=f32),
            _config(WuerstchenDiffNeXt, decoder_repo, "decoder"),
        ),
        "vqgan": HeavyPart(
            _source(decoder_repo, "vqgan"),
            lambda: load_part(decoder_repo, "vqgan", PaellaVQModel.from_pretrained, torch_dtype=f32),
            _config(PaellaVQModel, decoder_repo, "vqgan"),
        ),
    }
    return build_pipelines(
        store,
        parts,
        prior_tokenizer=load_part(prior_repo, "tokenizer", CLIPTokenizer.from_pretrained),
        prior_scheduler=load_part(prior_repo, "scheduler", DDPMWuerstchenScheduler.from_pretrained),
        decoder_tokenizer=load_part(decoder_repo, "tokenizer", CLIPTokenizer.from_pretrained),
        decoder_scheduler=load_part(decoder_repo, "scheduler", DDPMWuerstchenScheduler.from_pretrained),
        prior_config=pipeline_config(prior_repo, PRIOR_DEFAULTS),
        decoder_config=pipeline_config(decoder_repo, DECODER_DEFAULTS),
    )
