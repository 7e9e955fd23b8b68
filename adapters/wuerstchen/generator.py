"""Würstchen v2 through Hugging Face diffusers: the real image generator.

``WuerstchenGenerator(prior, decoder)`` implements :class:`domain.ports.Generator`. ``prior`` and
``decoder`` are hub ids (``warp-ai/wuerstchen-prior``, ``warp-ai/wuerstchen``) or local folders in
the hub layout (the tiny test model of :mod:`adapters.wuerstchen.tiny` is one).

Loading. diffusers 0.42 cannot build these pipelines with ``from_pretrained`` (the hub repos name
their library ``"wuerstchen"`` in ``model_index.json``), so the loader fetches each component with its
own class (``WuerstchenPrior``, ``CLIPTextModel``, ``CLIPTokenizer``, ``DDPMWuerstchenScheduler``,
``WuerstchenDiffNeXt``, ``PaellaVQModel``) and builds the prior and decoder pipelines from the parts,
reading the pipelines' own settings (``latent_mean``, ``latent_dim_scale`` ...) from
``model_index.json``. A hub id is looked up in the local Hugging Face cache first; the hub is only
asked when that misses and hub access is allowed (``local_files_only`` / ``HF_HUB_OFFLINE``). When
the weights cannot be found a one-line :class:`domain.errors.ModelNotFound` says what was looked
for, where, and how to fix it.

Running. Everything torch does (loading, warm-up, generation) runs on one dedicated thread, so the
event loop never waits on the model; PNGs are encoded on a small pool of threads (Pillow releases
the GIL), a group's while the next group is denoised; progress is reported on the event loop through
the caller's callback, with (step, total) counted over the prior and decoder steps of the whole call.

Batching. Requests of different users go through the pipelines together: each request keeps its
own prompt, negative prompt and seed (one ``torch.Generator`` per request, used for its initial
noise and its sampler noise), so an image made in a batch matches the one the same request makes
alone, up to floating point rounding. The stock decoder pipeline repeats the text embeddings of a
list of prompts by the batch size (a batch of 2 different prompts crashes); ``BatchDecoderPipeline``
fixes that. Requests that do not share size, steps and guidance are split into groups that run one
after the other, as are calls larger than ``max_batch``.

Speed. CUDA with bfloat16 when a GPU is there (fp16 overflows in the decoder), CPU with float32
otherwise, with as many threads as physical cores. Attention runs through PyTorch's fused
``scaled_dot_product_attention``. ``compile=True`` wraps the prior and the decoder in
``torch.compile`` (static shapes), warms up over the given (batch, width, height) combinations,
and keeps the compiled artefacts in ``compile_cache_dir`` (``TORCHINDUCTOR_CACHE_DIR`` and
``torch.compiler.save_cache_artifacts``) so that a restart reuses them instead of compiling again
(on an H200: 76 s for the first compile of a shape, 16 s after a restart). The service's mode,
``reduce-overhead`` (``GENERATOR_COMPILE_MODE``), adds CUDA graphs. On GPUs the prior's and
decoder's weights are kept in the channels-last layout (``channels_last``), which suits their
depth-wise convolutions and the channel-wise layers that follow them. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import GenerationError, ModelNotFound
from domain.models import GeneratedImage, GenerationRequest
from domain.ports import ProgressCallback

log = logging.getLogger(__name__)

# The model's size step: the prior works at 1/42.67 of the image size, the decoder at 1/4. Other
# sizes are generated at the next multiple up and resized.
SIZE_MULTIPLE = 128

PRIOR_PARTS = ("prior", "text_encoder", "tokenizer", "scheduler")
DECODER_PARTS = ("decoder", "text_encoder", "tokenizer", "scheduler", "vqgan")

# Defaults of the pipelines, used when a repository has no model_index.json.
PRIOR_DEFAULTS = {"latent_mean": 42.0, "latent_std": 1.0, "resolution_multiple": 42.67}
DECODER_DEFAULTS = {"latent_dim_scale": 10.67}

COMPILE_ARTIFACTS = "torch-compile-artifacts.bin"


# --------------------------------------------------------------------------- small helpers


def prior_timesteps(steps: int) -> list[float]:
    """The prior's timesteps for ``steps`` model evaluations.

    29 gives diffusers' ``DEFAULT_STAGE_C_TIMESTEPS`` exactly (19 evaluations from t=1 to 2/3, then
    10 down to 0); other counts keep the same shape, two thirds of the steps spent on the first
    third of the noise schedule."""
    if steps < 1:
        raise ValueError("prior steps must be at least 1")
    if steps == 1:
        return [1.0, 0.0]
    first = min(steps - 1, max(1, round(steps * 19 / 29)))
    second = steps - first
    head = [1.0 - (1.0 / 3.0) * i / first for i in range(first + 1)]
    tail = [(2.0 / 3.0) * (1.0 - j / second) for j in range(1, second + 1)]
    return head + tail


def default_threads() -> int:
    """CPU threads for torch: the physical cores this process may use (affinity and cgroup quota
    taken into account), at least 1."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or available
    except Exception:
        physical = available
    threads = min(available, physical)
    try:  # cgroup v2 quota, e.g. a container limited to 2 CPUs on a 64-core host
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            threads = min(threads, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, threads)


def resolve_device(device: str):
    import torch

    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise _error(
            GenerationError,
            f"GENERATOR_DEVICE={device!r} asks for CUDA but no CUDA GPU is available here; use auto or cpu",
            device=device,
        )
    return dev


_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}


def resolve_dtype(dtype: str, device) -> Any:
    """``auto``: bfloat16 on a GPU that has it, float32 otherwise (fp16 overflows in the decoder)."""
    import torch

    if dtype in ("", "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        resolved = getattr(torch, _DTYPES[dtype.lower()])
    except KeyError:
        raise _error(
            GenerationError, f"GENERATOR_DTYPE={dtype!r} is unknown; use auto, bf16, fp16 or fp32", dtype=dtype
        ) from None
    if resolved == torch.float16:
        log.warning("float16 is known to overflow in the Würstchen decoder; prefer bf16")
    return resolved


def _error(cls: type[GenerationError], message: str, **params: object) -> GenerationError:
    """A domain error whose text is the one-line ``message`` (the params stay for translations)."""
    error = cls(message=message, **params)
    error.args = (message,)
    return error


def _not_found(message: str, **params: object) -> ModelNotFound:
    return _error(ModelNotFound, message, **params)  # type: ignore[return-value]


def _offline_from_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith((".", "~", os.sep))
        or (os.altsep is not None and os.altsep in source)
        or source.count("/") > 1
        or Path(source).exists()
    )


def _hub_cache_dir(cache_dir: str | Path | None) -> str:
    if cache_dir:
        return str(cache_dir)
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:
        return "~/.cache/huggingface/hub"


def _weight_patterns(parts: Sequence[str], suffixes: Sequence[str]) -> list[str]:
    patterns = ["model_index.json"]
    for part in parts:
        patterns += [f"{part}/*{suffix}" for suffix in suffixes]
    return patterns


# Parts that hold weights; the tokenizer and scheduler folders hold only json/txt files.
WEIGHT_PARTS = frozenset({"prior", "text_encoder", "decoder", "vqgan"})


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def _missing_parts(folder: Path, parts: Sequence[str]) -> list[str]:
    return [
        p for p in parts
        if not (folder / p).is_dir() or (p in WEIGHT_PARTS and not _has_weights(folder / p))
    ]


def _first_line(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:limit]}" if text else type(error).__name__


@dataclass(frozen=True)
class _Repo:
    """A model repository found on disk: a local folder or a snapshot in the hub cache."""

    kind: str  # "prior" or "decoder"
    source: str  # what the settings said
    path: Path
    from_hub: bool

    def describe(self) -> str:
        return f"hub repo {self.source!r} (cached at {self.path})" if self.from_hub else f"folder {self.path}"


def _setting_name(kind: str) -> str:
    return f"WUERSTCHEN_{kind.upper()}"


def resolve_repo(
    source: str | Path,
    kind: str,
    parts: Sequence[str],
    *,
    local_files_only: bool | None = None,
    cache_dir: str | Path | None = None,
) -> _Repo:
    """Find the ``kind`` ("prior"/"decoder") repository ``source`` on disk: a local folder as it
    is, a hub id in the Hugging Face cache, or else downloaded from the hub when hub access is
    allowed (``local_files_only``; None follows ``HF_HUB_OFFLINE``). Raises ``ModelNotFound``."""
    text = str(source)
    setting = _setting_name(kind)
    layout = ", ".join(f"{p}/" for p in parts)
    path = Path(text).expanduser()
    if path.is_dir():
        return _Repo(kind, text, path.resolve(), from_hub=False)
    if isinstance(source, Path) or _looks_like_path(text):
        example = "warp-ai/wuerstchen-prior" if kind == "prior" else "warp-ai/wuerstchen"
        raise _not_found(
            f"Würstchen {kind} not found: folder {path} does not exist. Set {setting} to a folder "
            f"with {layout} (the hub layout) or to a hub id such as {example}.",
            kind=kind,
            source=text,
        )

    from huggingface_hub import snapshot_download

    offline = _offline_from_env() if local_files_only is None else local_files_only
    cache = _hub_cache_dir(cache_dir)
    patterns = _weight_patterns(parts, (".json", ".txt", ".safetensors"))
    cached: str | None = None
    try:  # the cache first: no network at all when the snapshot is there
        cached = snapshot_download(text, allow_patterns=patterns, local_files_only=True, cache_dir=cache_dir)
    except Exception:
        pass
    if cached is not None and (offline or not _missing_parts(Path(cached), parts)):
        return _Repo(kind, text, Path(cached), from_hub=True)
    if offline:
        raise _not_found(
            f"Würstchen {kind} not found: hub repo {text!r} is not in the Hugging Face cache ({cache}) "
            f"and hub access is off (HF_HUB_OFFLINE / local_files_only). Set {setting} to a local "
            f"folder with {layout} or allow hub access to download it.",
            kind=kind,
            source=text,
            cache=cache,
        )
    log.info("downloading %s from the Hugging Face hub into %s", text, cache)
    try:
        snapshot = snapshot_download(text, allow_patterns=patterns, cache_dir=cache_dir)
        pickled = [p for p in _missing_parts(Path(snapshot), parts) if p in WEIGHT_PARTS]
        if pickled:  # a repo with PyTorch pickles only for these parts
            snapshot = snapshot_download(text, allow_patterns=_weight_patterns(pickled, (".bin",)), cache_dir=cache_dir)
    except Exception as error:
        raise _not_found(
            f"Würstchen {kind} not found: hub repo {text!r} is not in the Hugging Face cache ({cache}) "
            f"and could not be downloaded ({_first_line(error)}). Set {setting} to a local folder "
            f"with {layout} or allow hub access.",
            kind=kind,
            source=text,
            cache=cache,
        ) from None
    return _Repo(kind, text, Path(snapshot), from_hub=True)


def _check_layout(repo: _Repo, parts: Sequence[str]) -> None:
    missing = _missing_parts(repo.path, parts)
    if missing:
        raise _not_found(
            f"Würstchen {repo.kind} incomplete: {repo.describe()} lacks {', '.join(m + '/' for m in missing)}"
            f" (or its weights). Set {_setting_name(repo.kind)} to a folder with "
            f"{', '.join(p + '/' for p in parts)} (the hub layout) or to the hub id.",
            kind=repo.kind,
            source=repo.source,
            missing=missing,
        )


def _pipeline_config(repo: _Repo, defaults: dict[str, float]) -> dict[str, float]:
    """The pipeline's own numbers from model_index.json (the parts of it diffusers can use)."""
    import json

    config = dict(defaults)
    try:
        index = json.loads((repo.path / "model_index.json").read_text())
    except (OSError, ValueError):
        return config
    for key in defaults:
        if isinstance(index.get(key), (int, float)):
            config[key] = float(index[key])
    return config


def _load_decoder(*args: Any, **kwargs: Any) -> Any:
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenDiffNeXt

    with skip_decoder_weight_init():  # the checkpoint sets every weight
        return WuerstchenDiffNeXt.from_pretrained(*args, **kwargs)


def _load_part(repo: _Repo, part: str, loader: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return loader(str(repo.path), subfolder=part, local_files_only=True, **kwargs)
    except Exception as error:
        raise _not_found(
            f"Würstchen {repo.kind}: could not load {part}/ from {repo.describe()} ({_first_line(error)}). "
            f"Set {_setting_name(repo.kind)} to a complete model folder or the hub id.",
            kind=repo.kind,
            source=repo.source,
            part=part,
        ) from None


# --------------------------------------------------------------------------- the decoder fix


def _batch_decoder_class():
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenDecoderPipeline

    class BatchDecoderPipeline(WuerstchenDecoderPipeline):
        """``WuerstchenDecoderPipeline`` that takes one prompt per image embedding.

        The stock ``__call__`` passes ``image_embeddings.size(0) * num_images_per_prompt`` to
        ``encode_prompt`` as the repeat count of every prompt, which is right for one prompt and
        several embeddings but repeats a list of B prompts B times (B*B rows: a size mismatch).
        Here the count is shared out over the prompts, so a list of B prompts with B embeddings gives
        B rows in order, and one prompt still covers all the embeddings."""

        def encode_prompt(
            self, prompt, device, num_images_per_prompt, do_classifier_free_guidance, negative_prompt=None
        ):
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            total = int(num_images_per_prompt)
            if total % len(prompts):
                raise ValueError(
                    f"{len(prompts)} prompts cannot be shared out over {total} image embeddings"
                )
            if negative_prompt is not None and isinstance(negative_prompt, str):
                negative_prompt = [negative_prompt] * len(prompts)
            return super().encode_prompt(
                prompts, device, total // len(prompts), do_classifier_free_guidance, negative_prompt
            )

    return BatchDecoderPipeline


def make_pipelines(
    *,
    prior_tokenizer: Any,
    prior_text_encoder: Any,
    prior: Any,
    prior_scheduler: Any,
    decoder_tokenizer: Any,
    decoder_text_encoder: Any,
    decoder: Any,
    decoder_scheduler: Any,
    vqgan: Any,
    prior_config: dict[str, float] | None = None,
    decoder_config: dict[str, float] | None = None,
    device: Any = None,
) -> tuple[Any, Any]:
    """Build the prior pipeline and the (fixed) decoder pipeline from their parts, on ``device``,
    with fused attention and no progress bars."""
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenPriorPipeline

    prior_pipe = WuerstchenPriorPipeline(
        tokenizer=prior_tokenizer,
        text_encoder=prior_text_encoder,
        prior=prior,
        scheduler=prior_scheduler,
        **(prior_config or PRIOR_DEFAULTS),
    )
    decoder_pipe = _batch_decoder_class()(
        tokenizer=decoder_tokenizer,
        text_encoder=decoder_text_encoder,
        decoder=decoder,
        scheduler=decoder_scheduler,
        vqgan=vqgan,
        **(decoder_config or DECODER_DEFAULTS),
    )
    for pipe in (prior_pipe, decoder_pipe):
        if device is not None:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
    use_fused_attention(prior_pipe.prior, decoder_pipe.decoder)
    return prior_pipe, decoder_pipe


# --------------------------------------------------------------------------- the generator


class _Cancelled(Exception):
    """Raised inside the pipeline (from the step callback) when the caller gave up."""


@dataclass
class _Group:
    indices: list[int]
    requests: list[GenerationRequest]

    @property
    def steps(self) -> int:
        return self.requests[0].prior_steps + self.requests[0].decoder_steps


def _group_key(r: GenerationRequest) -> tuple:
    return (r.width, r.height, r.prior_steps, r.decoder_steps, r.prior_guidance, r.decoder_guidance)


def _model_size(width: int, height: int) -> tuple[int, int]:
    """The size the model works at: each side rounded up to a multiple of 128."""
    return -(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE


def plan_groups(
    requests: Sequence[GenerationRequest],
    max_batch: int,
    limit: Callable[[int, int], int] | None = None,
) -> list[_Group]:
    """Split a call into batches that share size, steps and guidance, at most ``max_batch`` each
    (or ``limit(width, height)`` when given), in the order the requests came."""
    by_key: dict[tuple, _Group] = {}
    groups: list[_Group] = []
    for i, request in enumerate(requests):
        key = _group_key(request)
        cap = max(1, limit(request.width, request.height)) if limit else max_batch
        group = by_key.get(key)
        if group is None or len(group.requests) >= cap:
            group = _Group([], [])
            by_key[key] = group
            groups.append(group)
        group.indices.append(i)
        group.requests.append(request)
    return groups


def parse_warmup(text: str) -> list[tuple[int, int, int]]:
    """Warm-up combinations from a setting: ``"1x1024x1024,8x1024x1024,4x512x512"`` (batch x width
    x height, comma separated); empty gives none."""
    combos = []
    for item in text.replace(";", ",").split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            batch, width, height = (int(v) for v in item.split("x"))
        except ValueError:
            raise ValueError(f"warm-up item {item!r} is not BATCHxWIDTHxHEIGHT") from None
        if batch < 1 or width < 1 or height < 1:
            raise ValueError(f"warm-up item {item!r} must be positive")
        combos.append((batch, width, height))
    return combos


def encode_png(pixels, width: int, height: int) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 array, resized to (width, height) if it is not that size
    (sizes that are not multiples of 128 are generated at the next multiple up)."""
    from PIL import Image

    image = Image.fromarray(pixels, mode="RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


class WuerstchenGenerator:
    """The Würstchen v2 generator (see the module docstring).

    Args:
        prior, decoder: hub ids or local folders in the hub layout.
        device: ``auto`` (CUDA if there is a GPU, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ...
        dtype: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16``, ``fp16``, ``fp32``.
        threads: torch CPU threads; 0 = the physical cores available. Only used on CPU.
        compile: wrap the prior and decoder in ``torch.compile`` (meant for GPUs; on a CPU it needs
            a C++ compiler and minutes).
        compile_cache_dir: where compiled artefacts persist between restarts.
        max_batch: the most images one pipeline call makes; larger calls are split.
        warmup: (batch, width, height) combinations to run once at start (and to compile for).
        local_files_only: never ask the hub; None follows ``HF_HUB_OFFLINE``.
        cache_dir: the Hugging Face cache folder; None: the usual one (``HF_HOME``/``HF_HUB_CACHE``).
        compile_mode, compile_backend: passed to ``torch.compile``.
        channels_last: keep the prior's and decoder's convolution weights (and so their
            activations) in the channels-last layout; None: on CUDA only.
        png_threads: threads that encode the PNGs, in parallel and while the next group of a
            call is denoised (Pillow's encoder releases the GIL); 0: the usable cores, at most 16.
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
        compile_mode: str | None = None,
        compile_backend: str = "inductor",
        channels_last: bool | None = None,
        png_threads: int = 0,
        name: str = "wuerstchen",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.name = name
        self.max_batch = max_batch
        self.prior_source = prior
        self.decoder_source = decoder
        self.device_setting = device
        self.dtype_setting = dtype
        self.threads = threads
        self.compile = compile
        self.compile_cache_dir = Path(compile_cache_dir) if compile_cache_dir else None
        self.warmup = [tuple(int(v) for v in combo) for combo in (warmup or [])]
        # With static-shape compilation every new (batch, size) compiles for minutes: batches are
        # padded up to a warmed-up batch size of their size (the padding's images are dropped).
        self._buckets: dict[tuple[int, int], list[int]] = {}
        if compile:
            for batch, width, height in self.warmup:
                self._buckets.setdefault(_model_size(width, height), []).append(batch)
            for sizes in self._buckets.values():
                sizes.sort()
        self.local_files_only = local_files_only
        self.cache_dir = cache_dir
        self.compile_mode = compile_mode
        self.compile_backend = compile_backend
        self.channels_last = channels_last
        self.png_threads = png_threads or min(16, default_threads())
        self._png_pool: ThreadPoolExecutor | None = None
        self.device: Any = None
        self.dtype: Any = None
        self.load_seconds = 0.0
        self.warmup_seconds = 0.0
        self._warned_sizes: set[tuple[int, int]] = set()
        self._tiny_folder: Path | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._prior_pipe: Any = None
        self._decoder_pipe: Any = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def started(self) -> bool:
        return self._prior_pipe is not None

    async def start(self) -> None:
        """Load the model on the generation thread (the event loop keeps running meanwhile)."""
        if self.started:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wuerstchen")
        executor = self._executor
        try:
            # _load is idempotent and the executor has one thread: concurrent starts load once.
            await asyncio.get_running_loop().run_in_executor(executor, self._load)
        except BaseException:
            if self._executor is executor and not self.started:
                executor.shutdown(wait=False)
                self._executor = None
            raise

    async def stop(self) -> None:
        """Let the batch in hand finish, then free the model."""
        executor, self._executor = self._executor, None
        if executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: executor.shutdown(wait=True))
        pool, self._png_pool = self._png_pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        self._prior_pipe = self._decoder_pipe = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass

    # ----------------------------------------------------------------- loading (generation thread)

    def _load(self) -> None:
        import torch

        if self.started:
            return
        started = time.perf_counter()
        if self._tiny_folder is not None:
            from adapters.wuerstchen.tiny import ensure_tiny_model

            ensure_tiny_model(self._tiny_folder)
        self.device = resolve_device(self.device_setting)
        self.dtype = resolve_dtype(self.dtype_setting, self.device)
        if self.device.type == "cpu":
            threads = self.threads or default_threads()
            torch.set_num_threads(threads)
            log.info("Würstchen on CPU with %d threads, %s", threads, self.dtype)
        else:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            log.info("Würstchen on %s, %s", self.device, self.dtype)

        prior_repo = resolve_repo(
            self.prior_source, "prior", PRIOR_PARTS,
            local_files_only=self.local_files_only, cache_dir=self.cache_dir,
        )
        decoder_repo = resolve_repo(
            self.decoder_source, "decoder", DECODER_PARTS,
            local_files_only=self.local_files_only, cache_dir=self.cache_dir,
        )
        _check_layout(prior_repo, PRIOR_PARTS)
        _check_layout(decoder_repo, DECODER_PARTS)
        self._prior_pipe, self._decoder_pipe = self._build_pipelines(prior_repo, decoder_repo)
        self.load_seconds = time.perf_counter() - started
        log.info(
            "Würstchen loaded in %.1fs (prior: %s, decoder: %s)",
            self.load_seconds, prior_repo.describe(), decoder_repo.describe(),
        )
        try:
            self.prepare()
        except BaseException:
            self._prior_pipe = self._decoder_pipe = None
            raise

    def _build_pipelines(self, prior_repo: _Repo, decoder_repo: _Repo) -> tuple[Any, Any]:
        from transformers.utils import logging as transformers_logging

        dtype = self.dtype
        bars = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # no "Loading weights" bars in the worker's log
        try:
            return self._assemble(prior_repo, decoder_repo, dtype)
        finally:
            if bars:
                transformers_logging.enable_progress_bar()

    def _assemble(self, prior_repo: _Repo, decoder_repo: _Repo, dtype: Any) -> tuple[Any, Any]:
        from diffusers import DDPMWuerstchenScheduler
        from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenPrior
        from transformers import CLIPTextModel, CLIPTokenizer

        return make_pipelines(
            prior_tokenizer=_load_part(prior_repo, "tokenizer", CLIPTokenizer.from_pretrained),
            prior_text_encoder=_load_part(prior_repo, "text_encoder", CLIPTextModel.from_pretrained, dtype=dtype),
            prior=_load_part(prior_repo, "prior", WuerstchenPrior.from_pretrained, torch_dtype=dtype),
            prior_scheduler=_load_part(prior_repo, "scheduler", DDPMWuerstchenScheduler.from_pretrained),
            decoder_tokenizer=_load_part(decoder_repo, "tokenizer", CLIPTokenizer.from_pretrained),
            decoder_text_encoder=_load_part(
                decoder_repo, "text_encoder", CLIPTextModel.from_pretrained, dtype=dtype
            ),
            decoder=_load_part(decoder_repo, "decoder", _load_decoder, torch_dtype=dtype),
            decoder_scheduler=_load_part(decoder_repo, "scheduler", DDPMWuerstchenScheduler.from_pretrained),
            vqgan=_load_part(decoder_repo, "vqgan", PaellaVQModel.from_pretrained, torch_dtype=dtype),
            prior_config=_pipeline_config(prior_repo, PRIOR_DEFAULTS),
            decoder_config=_pipeline_config(decoder_repo, DECODER_DEFAULTS),
            device=self.device,
        )

    def _compile(self) -> None:
        if self.device.type != "cuda":
            log.warning("torch.compile asked for on %s: it is meant for GPUs and may take minutes", self.device)
        if self.compile_cache_dir is not None:
            prepare_compile_cache(self.compile_cache_dir)
        raise_recompile_limit(max(64, 4 * len(self.warmup)))
        kwargs: dict[str, Any] = {"backend": self.compile_backend, "dynamic": False}
        if self.compile_mode:
            kwargs["mode"] = self.compile_mode
        self._prior_pipe.prior.compile(**kwargs)
        self._decoder_pipe.decoder.compile(**kwargs)
        log.info("Würstchen prior and decoder wrapped in torch.compile(%s)", kwargs)

    def _warm_up(self) -> None:
        started = time.perf_counter()
        for batch, width, height in self.warmup:
            t0 = time.perf_counter()
            requests = [
                GenerationRequest(
                    prompt=f"warm-up {i}", width=width, height=height, seed=i, prior_steps=2, decoder_steps=2
                )
                for i in range(batch)
            ]
            self._denoise(requests)  # a warmed-up shape: no padding, and no PNGs to make
            log.info("warm-up batch=%d %dx%d took %.1fs", batch, width, height, time.perf_counter() - t0)
        self.warmup_seconds = time.perf_counter() - started

    def _save_compile_cache(self) -> None:
        if self.compile_cache_dir is not None:
            save_compile_cache(self.compile_cache_dir)

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
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        groups = plan_groups(requests, self.max_batch, self.batch_limit)
        total = sum(g.steps for g in groups)
        cancel = threading.Event()

        steps: asyncio.Queue[int | None] = asyncio.Queue()
        reporter = asyncio.create_task(self._report(steps, progress, total)) if progress else None

        def step_done(step: int) -> None:  # on the generation thread
            if reporter is None:
                return
            try:
                loop.call_soon_threadsafe(steps.put_nowait, step)
            except RuntimeError:  # the loop is closed: nobody listens any more
                pass

        try:
            images = await loop.run_in_executor(
                self._executor, self._generate_sync, groups, len(requests), step_done, cancel
            )
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next step
            raise
        finally:
            if reporter is not None:
                steps.put_nowait(None)
                if cancel.is_set():
                    reporter.cancel()
                try:
                    await reporter
                except asyncio.CancelledError:
                    pass
        return images

    async def unread(self, prompts: Sequence[str]) -> list[tuple[str, int]]:
        """The ``PromptReader`` port: for each prompt, the words past the prior's CLIP token limit
        (77) and that limit, counted on the generation thread with the model's own tokenizer."""
        from adapters.wuerstchen.tokens import unread_words

        if not self.started:
            await self.start()
        tokenizer = self._prior_pipe.tokenizer
        limit = int(tokenizer.model_max_length)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: [(unread_words(tokenizer, p), limit) for p in prompts]
        )

    @staticmethod
    async def _report(steps: asyncio.Queue, progress: ProgressCallback, total: int) -> None:
        while (step := await steps.get()) is not None:
            try:
                outcome = progress(step, total)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # progress is best effort
                log.debug("progress callback failed", exc_info=True)

    def _generate_sync(
        self,
        groups: list[_Group],
        count: int,
        step_done: Callable[[int], None],
        cancel: threading.Event,
    ) -> list[GeneratedImage]:
        counter = [0]

        def on_step() -> None:
            counter[0] += 1
            step_done(counter[0])

        # Each group's PNGs are encoded on the PNG threads while the next group is denoised.
        pending: dict[int, Future[GeneratedImage]] = {}  # request index -> its PNG
        try:
            for group in groups:
                pixels = self._denoise_group(group, on_step, cancel)
                pending.update(zip(group.indices, self._encode_later(group.requests, pixels), strict=True))
            return [pending[index].result() for index in range(count)]
        finally:
            for future in pending.values():
                future.cancel()

    def _denoise_group(self, group: _Group, on_step: Callable[[], None], cancel: threading.Event):
        """One pipeline call (generation thread): the group's pixels, padding dropped."""
        return self._denoise(self.padded_batch(group.requests), on_step, cancel)[: len(group.requests)]

    def _encode_later(self, requests: Sequence[GenerationRequest], pixels) -> list[Future[GeneratedImage]]:
        if self._png_pool is None:
            self._png_pool = ThreadPoolExecutor(max_workers=self.png_threads, thread_name_prefix="png")

        def encode(r: GenerationRequest, array) -> GeneratedImage:
            return GeneratedImage(png=encode_png(array, r.width, r.height), width=r.width, height=r.height)

        return [self._png_pool.submit(encode, r, array) for r, array in zip(requests, pixels, strict=True)]

    def encode_pngs(self, requests: Sequence[GenerationRequest], pixels) -> list[GeneratedImage]:
        """The PNGs of ``pixels`` (from ``denoise``) as ``generate`` makes them: on the PNG threads."""
        return [future.result() for future in self._encode_later(requests, pixels)]

    def batch_limit(self, width: int, height: int) -> int:
        """The largest batch one pipeline call makes at this size: ``max_batch``, or with
        compilation the largest warmed-up batch of the size (if it was warmed up at all)."""
        buckets = self._buckets.get(_model_size(width, height))
        return min(self.max_batch, buckets[-1]) if buckets else self.max_batch

    def padded_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """``requests`` padded up to the smallest warmed-up batch size that holds them, so a
        compiled model meets only shapes it has compiled for. Without compilation: unchanged."""
        requests = list(requests)
        buckets = self._buckets.get(_model_size(requests[0].width, requests[0].height))
        if not buckets:
            if self._buckets and (requests[0].width, requests[0].height) not in self._warned_sizes:
                self._warned_sizes.add((requests[0].width, requests[0].height))
                log.warning(
                    "%dx%d was not warmed up: the compiled model compiles for it now (minutes)",
                    requests[0].width, requests[0].height,
                )
            return requests
        target = next((b for b in buckets if b >= len(requests)), len(requests))
        filler = requests[-1]
        return requests + [filler.model_copy(update={"seed": (filler.seed + k + 1) % 2**32})
                           for k in range(target - len(requests))]

    def _denoise(
        self,
        requests: Sequence[GenerationRequest],
        on_step: Callable[[], None] = lambda: None,
        cancel: threading.Event | None = None,
    ):
        """Prior then decoder for requests that share size, steps and guidance: an (N, H, W, 3)
        uint8 array at the size rounded up to a multiple of 128."""
        import torch

        first = requests[0]
        if any(_group_key(r) != _group_key(first) for r in requests):
            raise ValueError("one pipeline call needs requests of one size, steps and guidance")
        width, height = _model_size(first.width, first.height)

        def callback(pipe, i, t, kwargs):
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            on_step()
            return {}

        # One generator per request: its noise does not depend on the other requests of the batch.
        # CPU generators give the same noise for a seed on every device.
        generators = [torch.Generator("cpu").manual_seed(r.seed) for r in requests]
        prompts = [r.prompt for r in requests]
        negatives = [r.negative_prompt for r in requests]
        with torch.inference_mode():
            embeddings = self._prior_pipe(
                prompt=prompts,
                negative_prompt=negatives if first.prior_guidance > 1 else None,
                height=height,
                width=width,
                timesteps=prior_timesteps(first.prior_steps),
                guidance_scale=first.prior_guidance,
                generator=generators,
                output_type="pt",
                callback_on_step_end=callback,
            ).image_embeddings
            images = self._decoder_pipe(
                image_embeddings=embeddings,
                prompt=prompts,
                negative_prompt=negatives if first.decoder_guidance > 1 else None,
                num_inference_steps=first.decoder_steps,
                guidance_scale=first.decoder_guidance,
                generator=generators,
                output_type="pt",
                callback_on_step_end=callback,
            ).images
            return (images.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    # ----------------------------------------------------------------- for scripts and benchmarks

    @classmethod
    def tiny(cls, folder: str | Path, **kwargs: Any) -> "WuerstchenGenerator":
        """The generator on the tiny random-weight model in ``folder``, built there at ``start()``
        (on the generation thread) if it is missing. For tests and offline demos
        (``GENERATOR=tiny``): the same loader and pipelines as the real model, nothing downloaded."""
        folder = Path(folder)
        kwargs.setdefault("name", "tiny-wuerstchen")
        kwargs.setdefault("local_files_only", True)
        gen = cls(folder / "prior", folder / "decoder", **kwargs)
        gen._tiny_folder = folder
        return gen

    @classmethod
    def from_pipelines(cls, prior_pipe: Any, decoder_pipe: Any, **kwargs: Any) -> "WuerstchenGenerator":
        """A started generator on pipelines built elsewhere (``make_pipelines``), e.g. the benchmark's
        random-weight model at real sizes. ``compile``/``warmup`` in ``kwargs`` are applied by
        ``prepare()``."""
        gen = cls("<in memory>", "<in memory>", **kwargs)
        gen._prior_pipe, gen._decoder_pipe = prior_pipe, decoder_pipe
        gen.device = prior_pipe.prior.device
        gen.dtype = prior_pipe.prior.dtype
        gen._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wuerstchen")
        return gen

    def prepare(self) -> None:
        """Set the memory layout, compile (if asked) and warm up, on the calling thread. ``start()``
        does this itself."""
        channels_last = self.channels_last if self.channels_last is not None else self.device.type == "cuda"
        set_channels_last(channels_last, self._prior_pipe.prior, self._decoder_pipe.decoder)
        if self.compile:
            self._compile()
        if self.warmup:
            self._warm_up()
            if self.compile:
                self._save_compile_cache()

    def denoise(self, requests: Sequence[GenerationRequest]):
        """The pipelines only (no PNG), blocking, for benchmarks: (N, H, W, 3) uint8."""
        return self._denoise(list(requests))


# --------------------------------------------------------------------------- speed helpers


def use_fused_attention(*models: Any) -> None:
    """Route the models' attention through ``torch.nn.functional.scaled_dot_product_attention``
    (the Würstchen models install diffusers' plain ``AttnProcessor`` by default)."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    for model in models:
        for module in model.modules():
            if isinstance(module, Attention):
                module.set_processor(AttnProcessor2_0())


def set_channels_last(enabled: bool, *models: Any) -> None:
    """Put the models' 4-D weights in the channels-last (NHWC) layout, or back to the usual one.

    Convolutions with channels-last weights give channels-last outputs, so the Würstchen blocks'
    ``permute(0, 2, 3, 1)`` before each channel-wise linear layer (and the layer norms) read
    contiguous memory instead of copying, and cuDNN picks its NHWC kernels."""
    import torch

    layout = torch.channels_last if enabled else torch.contiguous_format
    for model in models:
        torch.nn.Module.to(model, memory_format=layout)


@contextmanager
def skip_decoder_weight_init() -> Iterator[None]:
    """Construct ``WuerstchenDiffNeXt`` without its ``_init_weights``.

    That method is quadratic: ``self.apply`` calls it for every submodule, and each call walks all
    the blocks again, rescaling weights. At the real size that is ~10^5 tensor operations, seconds
    to tens of seconds of start-up, for weights that the checkpoint (or the benchmark's random
    values) replaces anyway."""
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenDiffNeXt

    with _INIT_LOCK:
        original = WuerstchenDiffNeXt.__dict__["_init_weights"]
        WuerstchenDiffNeXt._init_weights = lambda self, module: None
        try:
            yield
        finally:
            WuerstchenDiffNeXt._init_weights = original


_INIT_LOCK = threading.Lock()


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
