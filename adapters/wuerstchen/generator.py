"""Würstchen v2 through Hugging Face diffusers: the real image generator.

``WuerstchenGenerator(prior, decoder)`` implements :class:`domain.ports.Generator` and
:class:`domain.ports.PromptReader`. It composes the parts of this package:

- :mod:`~adapters.wuerstchen.model_files`: finding the prior and decoder repositories (local
  folders in the hub layout or hub ids) and loading their parts;
- :mod:`~adapters.wuerstchen.pipelines`: the pipelines built from the parts (with the decoder's
  batch fix) and one pipeline call of a batch;
- :mod:`~adapters.wuerstchen.batching`: requests grouped by size, steps and guidance, at most
  ``max_batch`` at a time, padded up to a warmed-up batch size when compiled;
- :mod:`~adapters.wuerstchen.png`: the PNGs, encoded on their own threads while the next group of
  a call is denoised;
- :mod:`~adapters.wuerstchen.generation_thread`: the one thread torch runs on, progress reported on
  the event loop, cancellation;
- :mod:`~adapters.wuerstchen.compilation`: ``torch.compile``, its cache and the warm-up.

CUDA with bfloat16 when a GPU is there (fp16 overflows in the decoder); on a CPU bfloat16 where it
has native bf16 (AMX or AVX512-BF16), float32 elsewhere, with as many threads as physical cores.
It also times itself (``SpeedProbe``: the worker's calibration at start). Figures:
docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from adapters.huggingface.torch_setup import choose_dtype, cpu_name, default_threads, resolve_device
from adapters.wuerstchen.batching import Group, ShapeBuckets, parse_warmup, plan_groups
from adapters.wuerstchen.compilation import TorchCompile, warm_up
from adapters.wuerstchen.generation_thread import GenerationThread
from adapters.wuerstchen.model_files import find_repos, load_pipelines
from adapters.wuerstchen.pipelines import Pipelines
from adapters.wuerstchen.png import PngEncoder
from domain.models import GeneratedImage, GenerationRequest, GeneratorKind
from domain.ports import ProgressCallback

__all__ = ["WuerstchenGenerator", "parse_warmup"]

log = logging.getLogger(__name__)


class WuerstchenGenerator:
    """The Würstchen v2 generator (see the module docstring).

    Args:
        prior, decoder: hub ids or local folders in the hub layout.
        device: ``auto`` (CUDA if there is a GPU, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ...
        dtype: ``auto`` (bf16 on CUDA and on CPUs with native bf16, else fp32), ``bf16``,
            ``fp16``, ``fp32``.
        cpu_bf16: replaces the CPU's native-bf16 check of ``auto`` (tests; None: ask the CPU,
            or the ``P2P_CPU_BF16`` environment variable).
        threads: torch CPU threads; 0 = the physical cores available. Only used on CPU.
        compile: wrap the prior and decoder in ``torch.compile`` (meant for GPUs; on a CPU it needs
            a C++ compiler and minutes).
        compile_cache_dir: where compiled artefacts persist between restarts.
        max_batch: the most images one pipeline call makes; larger calls are split.
        warmup: (batch, width, height) combinations to run once at start (and to compile for).
        local_files_only: never ask the hub; None follows ``HF_HUB_OFFLINE``.
        cache_dir: the Hugging Face cache folder; None: the usual one (``HF_HOME``/``HF_HUB_CACHE``).
        prior_revision, decoder_revision: the hub revision (branch, tag or commit hash) of a hub id
            ``prior``/``decoder``; a commit hash pins the weights exactly.
        compile_mode, compile_backend: passed to ``torch.compile``.
        channels_last: keep the prior's and decoder's convolution weights (and so their
            activations) in the channels-last layout; None: on CUDA only, and the VQGAN's on
            CPUs only (where its full-size convolutions run twice as fast that way).
        png_threads: threads that encode the PNGs, in parallel and while the next group of a
            call is denoised (Pillow's encoder releases the GIL); 0: the usable cores, at most 16.
        png_encoder: the PNG encoder to use instead of one with ``png_threads`` threads.
        name: the generator's name (metrics and image metadata).
    """

    def __init__(
        self,
        prior: str | Path,
        decoder: str | Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        threads: int = 0,
        compile: bool = False,
        compile_cache_dir: str | Path | None = None,
        max_batch: int = 8,
        warmup: list[tuple[int, int, int]] | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | Path | None = None,
        prior_revision: str = "main",
        decoder_revision: str = "main",
        compile_mode: str | None = None,
        compile_backend: str = "inductor",
        channels_last: bool | None = None,
        png_threads: int = 0,
        png_encoder: PngEncoder | None = None,
        name: str = "wuerstchen",
        cpu_bf16: bool | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.name = name
        self.max_batch = max_batch
        self.prior_source = prior
        self.decoder_source = decoder
        self.device_setting = device
        self.dtype_setting = dtype
        self.cpu_bf16 = cpu_bf16
        self.dtype_reason = ""
        self.backend_reason = ""  # why the composition root chose torch (GENERATOR_BACKEND)
        self.threads = threads
        self.compile = compile
        self.compile_cache_dir = Path(compile_cache_dir) if compile_cache_dir else None
        self.warmup = [(int(b), int(w), int(h)) for b, w, h in (warmup or [])]
        self.local_files_only = local_files_only
        self.cache_dir = cache_dir
        self.prior_revision = prior_revision
        self.decoder_revision = decoder_revision
        self.compile_mode = compile_mode
        self.compile_backend = compile_backend
        self.channels_last = channels_last
        self._png = png_encoder or PngEncoder(png_threads)
        self.png_threads = self._png.threads
        # With compilation, batches are padded up to a warmed-up batch size of their size.
        self._buckets = ShapeBuckets(self.warmup if compile else ())
        self._thread = GenerationThread("wuerstchen")
        self.device: Any = None
        self.dtype: Any = None
        self.load_seconds = 0.0
        self.warmup_seconds = 0.0
        self._tiny_folder: Path | None = None
        self._pipelines: Pipelines | None = None

    @classmethod
    def tiny(cls, folder: str | Path, **kwargs: Any) -> WuerstchenGenerator:
        """The generator on the tiny random-weight model in ``folder``, built there at ``start()``
        (on the generation thread) if it is missing. For tests and offline demos
        (``GENERATOR=tiny``): the same loader and pipelines as the real model, nothing downloaded."""
        folder = Path(folder)
        kwargs.setdefault("name", "tiny-wuerstchen")
        kwargs.setdefault("local_files_only", True)
        gen = cls(folder / "prior", folder / "decoder", **kwargs)
        gen._tiny_folder = folder
        return gen

    @property
    def kind(self) -> GeneratorKind:
        """Real weights, or the tiny model's random ones (its pictures are noise)."""
        return GeneratorKind.TINY if self._tiny_folder is not None else GeneratorKind.REAL

    @property
    def pipelines(self) -> Pipelines | None:
        """The loaded prior and decoder pipelines (None until started)."""
        return self._pipelines

    # ----------------------------------------------------------------- lifecycle

    @property
    def started(self) -> bool:
        return self._pipelines is not None

    async def start(self) -> None:
        """Load the model on the generation thread (the event loop keeps running meanwhile)."""
        if not self.started:
            # _load is idempotent and the thread is one: concurrent starts load once.
            await self._thread.start(self._load, lambda: self.started)

    async def stop(self) -> None:
        """Let the batch in hand finish, then free the model."""
        await self._thread.close()
        self._png.close()
        self._pipelines = None
        with contextlib.suppress(Exception):  # freeing GPU memory is best effort
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _load(self) -> None:  # on the generation thread
        if self.started:
            return
        started = time.perf_counter()
        if self._tiny_folder is not None:
            from adapters.wuerstchen.tiny import ensure_tiny_model

            ensure_tiny_model(self._tiny_folder)
        self._set_up_torch()
        prior_repo, decoder_repo = find_repos(
            self.prior_source,
            self.decoder_source,
            local_files_only=self.local_files_only,
            cache_dir=self.cache_dir,
            prior_revision=self.prior_revision,
            decoder_revision=self.decoder_revision,
        )
        pipelines = load_pipelines(prior_repo, decoder_repo, device=self.device, dtype=self.dtype)
        self.load_seconds = time.perf_counter() - started
        log.info(
            "Würstchen loaded in %.1fs (prior: %s, decoder: %s)",
            self.load_seconds,
            prior_repo.describe(),
            decoder_repo.describe(),
        )
        self._prepare(pipelines)
        self._pipelines = pipelines

    def _set_up_torch(self) -> None:
        import torch

        self.device = resolve_device(self.device_setting)
        self.dtype, self.dtype_reason = choose_dtype(self.dtype_setting, self.device, self.cpu_bf16)
        if self.device.type == "cpu":
            threads = self.threads or default_threads()
            torch.set_num_threads(threads)
            log.info(
                "Würstchen on CPU (%s) with %d threads, %s (%s)", cpu_name(), threads, self.dtype, self.dtype_reason
            )
        else:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            log.info("Würstchen on %s, %s (%s)", self.device, self.dtype, self.dtype_reason)

    def _prepare(self, pipelines: Pipelines) -> None:
        """Set the memory layout, compile (if asked) and warm up."""
        channels_last = self.channels_last if self.channels_last is not None else self.device.type == "cuda"
        pipelines.set_channels_last(channels_last)
        # The VQGAN decodes at the image's full size, where oneDNN's convolutions are about twice
        # as fast channels-last on a CPU (2.5 against 5.2 CPU seconds at 512, bf16): on by default
        # there; on a GPU it follows the setting as before.
        vqgan_channels_last = self.channels_last if self.channels_last is not None else self.device.type == "cpu"
        pipelines.set_vqgan_channels_last(vqgan_channels_last)
        compiler = TorchCompile(self.compile_backend, self.compile_mode, self.compile_cache_dir)
        if self.compile:
            compiler.apply(pipelines, self.device, len(self.warmup))
        if self.warmup:
            self.warmup_seconds = warm_up(pipelines, self.warmup)
            if self.compile:
                compiler.save_cache()

    # ----------------------------------------------------------------- generation

    async def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[GeneratedImage]:
        """Make one PNG per request, in order. The work runs on the generation thread; ``progress``
        is called on the event loop with (step, total) over all the steps of this call."""
        requests = list(requests)
        if not requests:
            return []
        if not self.started:
            await self.start()
        groups = plan_groups(requests, self.max_batch, self.batch_limit)

        def work(on_step: Callable[[], None], cancel: threading.Event) -> list[GeneratedImage]:
            return self._denoise_and_encode(groups, len(requests), on_step, cancel)

        return await self._thread.run(work, sum(g.steps for g in groups), progress)

    def _denoise_and_encode(
        self, groups: list[Group], count: int, on_step: Callable[[], None], cancel: threading.Event
    ) -> list[GeneratedImage]:  # on the generation thread
        pipelines = self._pipelines
        assert pipelines is not None
        # Each group's PNGs are encoded on the PNG threads while the next group is denoised.
        pending: dict[int, Future[GeneratedImage]] = {}  # request index -> its PNG
        try:
            for group in groups:
                pixels = pipelines.denoise(self.padded_batch(group.requests), on_step, cancel)
                pixels = pixels[: len(group.requests)]  # the padding dropped
                pending.update(zip(group.indices, self._png.submit(group.requests, pixels), strict=True))
            return [pending[index].result() for index in range(count)]
        finally:
            for future in pending.values():
                future.cancel()

    # ----------------------------------------------------------------- its own speed

    def speed_identity(self) -> dict[str, str]:
        """The ``SpeedProbe`` port: what this generator's speed depends on (after ``start``)."""
        import torch

        if self.device is not None and self.device.type == "cuda":
            machine = torch.cuda.get_device_name(self.device)
        else:
            machine = f"{cpu_name()} x{torch.get_num_threads()} threads"
        return {
            "machine": machine,
            "model": f"{self.name}:{self.prior_source}+{self.decoder_source}",
            "dtype": str(self.dtype).removeprefix("torch."),
            "dtype_reason": self.dtype_reason,
            "backend": "torch-compile" if self.compile else "torch-eager",
            "backend_reason": self.backend_reason,
            "device": str(self.device),
        }

    async def time_one(self, request: GenerationRequest) -> tuple[float, list[float]]:
        """The ``SpeedProbe`` port: ``request``'s image made as a job's (PNG included), timed on
        the generation thread: seconds in all, and when each step ended."""
        if not self.started:
            await self.start()
        groups = plan_groups([request], self.max_batch, self.batch_limit)
        ends: list[float] = []

        def work(on_step: Callable[[], None], cancel: threading.Event) -> float:
            began = time.perf_counter()

            def stamp() -> None:
                ends.append(time.perf_counter() - began)

            self._denoise_and_encode(groups, 1, stamp, cancel)
            return time.perf_counter() - began

        total = await self._thread.run(work, sum(g.steps for g in groups))
        return total, ends

    async def unread(self, prompts: Sequence[str]) -> list[tuple[str, int]]:
        """The ``PromptReader`` port: for each prompt, the words past the prior's CLIP token limit
        (77) and that limit, counted on the generation thread with the model's own tokenizer."""
        from adapters.wuerstchen.tokens import unread_words

        if not self.started:
            await self.start()
        assert self._pipelines is not None
        tokenizer = self._pipelines.prior_pipe.tokenizer
        limit = int(tokenizer.model_max_length)
        return await self._thread.call(lambda: [(unread_words(tokenizer, p), limit) for p in prompts])

    def batch_limit(self, width: int, height: int) -> int:
        """The largest batch one pipeline call makes at this size: ``max_batch``, or with
        compilation the largest warmed-up batch of the size (if it was warmed up at all)."""
        return self._buckets.batch_limit(width, height, self.max_batch)

    def padded_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """``requests`` padded up to the smallest warmed-up batch size that holds them, so a
        compiled model meets only shapes it has compiled for. Without compilation: unchanged."""
        return self._buckets.pad(requests)
