"""``torch.compile`` of the prior and the decoder, its on-disk cache, and the warm-up.

Compilation wraps the two models in ``torch.compile`` with static shapes; the warm-up runs the
given (batch, width, height) combinations once, which compiles them. The compiled artefacts are
kept in a cache folder (``TORCHINDUCTOR_CACHE_DIR`` and ``torch.compiler.save_cache_artifacts``),
so that a restart reuses them instead of compiling again (figures: docs/benchmarks.md). The
service's mode, ``reduce-overhead``, adds CUDA graphs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.wuerstchen.pipelines import Pipelines
from domain.models import GenerationRequest

log = logging.getLogger(__name__)

COMPILE_ARTIFACTS = "torch-compile-artifacts.bin"


@dataclass(frozen=True)
class TorchCompile:
    """How the models are compiled: ``torch.compile(backend=..., mode=..., dynamic=False)``, with
    the artefacts kept in ``cache_dir`` (None: torch's own temporary cache only)."""

    backend: str = "inductor"
    mode: str | None = None
    cache_dir: Path | None = None

    def apply(self, pipelines: Pipelines, device: Any, shapes: int = 0) -> None:
        """Wrap the prior and the decoder, allowing a recompilation per warm-up shape and more."""
        if device.type != "cuda":
            log.warning("torch.compile asked for on %s: it is meant for GPUs and may take minutes", device)
        if self.cache_dir is not None:
            prepare_compile_cache(self.cache_dir)
        raise_recompile_limit(max(64, 4 * shapes))
        kwargs: dict[str, Any] = {"backend": self.backend, "dynamic": False}
        if self.mode:
            kwargs["mode"] = self.mode
        pipelines.prior_pipe.prior.compile(**kwargs)
        pipelines.decoder_pipe.decoder.compile(**kwargs)
        log.info("Würstchen prior and decoder wrapped in torch.compile(%s)", kwargs)

    def save_cache(self) -> None:
        if self.cache_dir is not None:
            save_compile_cache(self.cache_dir)


def warm_up(pipelines: Pipelines, shapes: Sequence[tuple[int, int, int]]) -> float:
    """One short call (2 + 2 steps) per (batch, width, height): a compiled model compiles for
    each shape now rather than on a user's request. Returns the seconds it took."""
    started = time.perf_counter()
    for batch, width, height in shapes:
        t0 = time.perf_counter()
        requests = [
            GenerationRequest(prompt=f"warm-up {i}", width=width, height=height, seed=i, prior_steps=2, decoder_steps=2)
            for i in range(batch)
        ]
        pipelines.denoise(requests)  # a warmed-up shape: no padding, and no PNGs to make
        log.info("warm-up batch=%d %dx%d took %.1fs", batch, width, height, time.perf_counter() - t0)
    return time.perf_counter() - started


def raise_recompile_limit(limit: int) -> None:
    """Static shapes compile once per (batch, size): allow enough recompilations for the warm-up."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), limit))


def prepare_compile_cache(folder: Path) -> None:
    """Point Inductor's and Triton's on-disk caches into ``folder`` and load the artefacts a
    previous run saved there (``torch.compiler.load_cache_artifacts``)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    artifacts = folder / COMPILE_ARTIFACTS
    if artifacts.is_file() and hasattr(torch.compiler, "load_cache_artifacts"):
        try:
            torch.compiler.load_cache_artifacts(artifacts.read_bytes())
            log.info("loaded torch.compile artefacts from %s", artifacts)
        except Exception as error:  # a cache from another torch version: compile afresh
            log.warning("could not load %s (%s); compiling afresh", artifacts, type(error).__name__)


def save_compile_cache(folder: Path) -> None:
    """Save what was compiled so far (``torch.compiler.save_cache_artifacts``) into ``folder``."""
    import torch

    if not hasattr(torch.compiler, "save_cache_artifacts"):
        return
    try:
        saved = torch.compiler.save_cache_artifacts()
    except Exception as error:
        log.warning("could not save torch.compile artefacts (%s)", type(error).__name__)
        return
    if not saved:
        return
    data = saved[0]
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{COMPILE_ARTIFACTS}.{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, folder / COMPILE_ARTIFACTS)
    log.info("saved %d bytes of torch.compile artefacts to %s", len(data), folder)
