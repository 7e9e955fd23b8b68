"""Würstchen v2 on OpenVINO: the second adapter of the generator port, for CPUs.

``OpenVinoGenerator`` is the torch adapter's generator (:class:`adapters.wuerstchen.generator.
WuerstchenGenerator`: the same loader, requests, batching, PNG threads, generation thread,
calibration) with the five heavy models running on OpenVINO (:mod:`adapters.openvino.pipelines`).
The models are converted once and kept as IR under ``cache_dir`` (``COMPILE_CACHE_DIR/openvino``),
compiled with static shapes for each (batch, size) at the warm-up (``GENERATOR_WARMUP``) or on
first use, through OpenVINO's model cache on disk: a restarted worker neither converts nor
compiles again. Batches are padded up to a warmed-up batch size of their size, as with
``torch.compile``, so that a warmed-up worker meets only shapes it has compiled.

The inference precision follows ``GENERATOR_DTYPE`` with the torch adapter's own rule
(``auto``: bf16 where the CPU has native bf16, f32 elsewhere), as OpenVINO's
``INFERENCE_PRECISION_HINT``; ``int8_weights`` compresses the weights with NNCF.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from adapters.huggingface.hub import one_line_error
from adapters.huggingface.torch_setup import cpu_name, default_threads
from adapters.openvino.models import Counters, IrStore, Precision
from adapters.wuerstchen.batching import ShapeBuckets
from adapters.wuerstchen.compilation import warm_up
from adapters.wuerstchen.generator import WuerstchenGenerator
from adapters.wuerstchen.model_files import find_repos
from domain.errors import GenerationError

log = logging.getLogger(__name__)


def precision_of(dtype: Any) -> str:
    """OpenVINO's inference precision for the torch dtype the dtype rule chose."""
    import torch

    return {torch.bfloat16: "bf16", torch.float16: "f16"}.get(dtype, "f32")


class OpenVinoGenerator(WuerstchenGenerator):
    """Würstchen on OpenVINO (see the module docstring). Takes the torch generator's arguments
    (``compile``, ``compile_mode`` and ``channels_last`` do not apply) and:

    Args:
        cache_dir_ov: where the converted models and the compiled-model cache live.
        int8_weights: compress the weights to int8 with NNCF (``nncf.compress_weights``).
        backend_reason: why this backend was chosen (the log and the metrics).
    """

    def __init__(
        self,
        prior: str | Path,
        decoder: str | Path,
        *,
        cache_dir_ov: str | Path = Path("data/compile-cache/openvino"),
        int8_weights: bool = False,
        backend_reason: str = "explicit",
        **kwargs: Any,
    ) -> None:
        kwargs["compile"] = False
        super().__init__(prior, decoder, **kwargs)
        self.ov_cache_dir = Path(cache_dir_ov)
        self.int8_weights = int8_weights
        self.backend_reason = backend_reason
        self.precision = Precision()
        self.store: IrStore | None = None
        # Static shapes: batches are padded up to a warmed-up batch size of their size.
        self._buckets = ShapeBuckets(self.warmup)

    @property
    def counters(self) -> Counters | None:
        """Conversions and compilations of this process (None until started)."""
        return self.store.counters if self.store is not None else None

    def _load(self) -> None:  # on the generation thread
        if self.started:
            return
        started = time.perf_counter()
        if self._tiny_folder is not None:
            from adapters.wuerstchen.tiny import ensure_tiny_model

            ensure_tiny_model(self._tiny_folder)
        self._set_up_torch()
        if self.device.type != "cpu":
            raise one_line_error(
                GenerationError, f"the OpenVINO backend runs on CPUs, not on {self.device}", device=str(self.device)
            )
        prior_repo, decoder_repo = find_repos(
            self.prior_source,
            self.decoder_source,
            local_files_only=self.local_files_only,
            cache_dir=self.cache_dir,
            prior_revision=self.prior_revision,
            decoder_revision=self.decoder_revision,
        )
        from adapters.openvino.pipelines import load_pipelines

        self.precision = Precision(precision_of(self.dtype), self.int8_weights)
        self.store = IrStore(self.ov_cache_dir, self.precision, self.threads or default_threads())
        log.info(
            "Würstchen on OpenVINO (%s), inference precision %s, weights %s, backend chosen: %s; models in %s",
            cpu_name(),
            self.precision.inference,
            self.precision.weight_format,
            self.backend_reason,
            self.ov_cache_dir,
        )
        pipelines = load_pipelines(prior_repo, decoder_repo, self.store)
        self.load_seconds = time.perf_counter() - started
        counters = self.store.counters
        log.info(
            "Würstchen on OpenVINO loaded in %.1fs (converted: %s, %.1fs; prior: %s, decoder: %s)",
            self.load_seconds,
            ", ".join(counters.converted) or "nothing",
            counters.convert_seconds,
            prior_repo.describe(),
            decoder_repo.describe(),
        )
        if self.warmup:
            self.warmup_seconds = warm_up(pipelines, self.warmup)
            log.info(
                "OpenVINO warm-up %.1fs: %d shapes compiled, %d read from the cache (%.1fs)",
                self.warmup_seconds,
                len(counters.compiled),
                len(counters.from_cache),
                counters.compile_seconds,
            )
        self._pipelines = pipelines

    def speed_identity(self) -> dict[str, str]:
        """The ``SpeedProbe`` port: the torch generator's identity with this backend's name,
        precision and reason."""
        identity = super().speed_identity()
        identity["backend"] = "openvino-int8w" if self.int8_weights else "openvino"
        identity["backend_reason"] = self.backend_reason
        identity["dtype"] = {"bf16": "bfloat16", "f16": "float16"}.get(self.precision.inference, "float32")
        return identity
