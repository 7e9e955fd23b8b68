"""MarianMT through Hugging Face transformers: the real ``PromptTranslator``.

``MarianTranslator(source)`` loads ``MarianMTModel`` and ``MarianTokenizer`` from a hub id
(default ``Helsinki-NLP/opus-mt-ru-en``: 76M parameters, 6+6 layers of width 512) or a local
folder in the hub layout, the way the Würstchen parts are loaded: a local folder as it is, a hub id
from the Hugging Face cache first, the hub only when that misses and hub access is allowed
(``local_files_only`` / ``HF_HUB_OFFLINE``), at the revision ``PROMPT_TRANSLATION_REVISION`` pins
(``main`` by default), and a one-line :class:`domain.errors.ModelNotFound` when the model cannot
be found. The weights are loaded from safetensors only; a folder with a pickle alone
(``pytorch_model.bin``) is refused. The device is the generator's; the dtype has the generator's
choices (``auto``: bf16 on a GPU, fp32 on the CPU). On a CPU without native bf16, bf16 halves the
time of a prompt translated alone (the decoder is bound by reading its weights) but slows batches;
figures in docs/benchmarks.md.

Everything torch does runs on the translator's own thread, never on the event loop. A call
translates its texts in batches of ``max_batch`` (greedy by default, ``beams`` for beam search),
with at most ``max_new_tokens(input)`` new tokens per text: twice the input's tokens and a few more,
which no real translation of a prompt needs and which bounds a model that does not stop.

``MarianTranslator.tiny(folder)`` is the same adapter on the tiny random-weight model of
:mod:`adapters.marian.tiny`, built there at start (for tests and ``GENERATOR=tiny``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from adapters.huggingface.hub import DEFAULT_REVISION, has_safetensors, pickles_only
from adapters.huggingface.hub import first_line as _first_line
from adapters.huggingface.hub import hub_cache_dir as _hub_cache_dir
from adapters.huggingface.hub import looks_like_path as _looks_like_path
from adapters.huggingface.hub import offline_from_env as _offline_from_env
from adapters.huggingface.hub import one_line_error as _error
from adapters.huggingface.torch_setup import default_threads, resolve_device, resolve_dtype
from domain.errors import ModelNotFound

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Helsinki-NLP/opus-mt-ru-en"
SETTING = "PROMPT_TRANSLATION_MODEL"
REVISION_SETTING = "PROMPT_TRANSLATION_REVISION"
TOKENIZER_FILES = ("source.spm", "target.spm", "vocab.json")


def _not_found(message: str, **params: object) -> ModelNotFound:
    return _error(ModelNotFound, message, **params)  # type: ignore[return-value]  # _error returns an instance of cls


def _missing(folder: Path) -> list[str]:
    missing = [name for name in ("config.json", *TOKENIZER_FILES) if not (folder / name).is_file()]
    if not has_safetensors(folder):
        missing.append("model.safetensors")
    return missing


def resolve_model(
    source: str | Path,
    *,
    local_files_only: bool | None = None,
    cache_dir: str | Path | None = None,
    revision: str = DEFAULT_REVISION,
) -> Path:
    """The folder of the translation model ``source`` (a local folder, or a hub id at ``revision``
    found in the Hugging Face cache or downloaded when hub access is allowed). Raises
    ``ModelNotFound``, also for a folder whose weights are a pickle only."""
    text = str(source)
    path = Path(text).expanduser()
    layout = "config.json, model.safetensors, source.spm, target.spm, vocab.json"
    if path.is_dir():
        folder = path.resolve()
    elif isinstance(source, Path) or _looks_like_path(text):
        raise _not_found(
            f"translation model not found: folder {path} does not exist. Set {SETTING} to a folder "
            f"with {layout} or to a hub id such as {DEFAULT_MODEL} (or PROMPT_TRANSLATION=off).",
            source=text,
        )
    else:
        folder = _from_hub(text, local_files_only, cache_dir, revision)
    pickled = pickles_only(folder)
    if pickled:
        raise _not_found(
            f"translation model refused: {folder} has pickle weights only ({pickled[0]}), which are not "
            f"loaded (loading a pickle can run code). Set {SETTING} to a folder with model.safetensors "
            f"or {REVISION_SETTING} to a hub revision that has it (or PROMPT_TRANSLATION=off).",
            source=text,
            missing=["model.safetensors"],
        )
    missing = _missing(folder)
    if missing:
        raise _not_found(
            f"translation model incomplete: {folder} lacks {', '.join(missing)}. Set {SETTING} to a "
            f"complete MarianMT folder or hub id ({REVISION_SETTING}: a revision with model.safetensors) "
            f"(or PROMPT_TRANSLATION=off).",
            source=text,
            missing=missing,
        )
    return folder


def _from_hub(repo: str, local_files_only: bool | None, cache_dir: str | Path | None, revision: str) -> Path:
    from huggingface_hub import snapshot_download

    offline = _offline_from_env() if local_files_only is None else local_files_only
    cache = _hub_cache_dir(cache_dir)
    patterns = ["*.json", "*.spm", "*.safetensors"]
    at = f"hub repo {repo!r} at revision {revision!r}"
    cached = None
    with contextlib.suppress(Exception):  # the cache first: no network at all when the snapshot is there
        cached = snapshot_download(
            repo, revision=revision, allow_patterns=patterns, local_files_only=True, cache_dir=cache_dir
        )
    if cached is not None and (offline or not _missing(Path(cached))):
        return Path(cached)
    if offline:
        raise _not_found(
            f"translation model not found: {at} is not in the Hugging Face cache ({cache}) "
            f"and hub access is off (HF_HUB_OFFLINE). Set {SETTING} to a local folder, allow hub "
            f"access to download it, or set PROMPT_TRANSLATION=off.",
            source=repo,
            cache=cache,
        )
    log.info("downloading %s at revision %s from the Hugging Face hub into %s", repo, revision, cache)
    try:
        # Only safetensors weights are fetched: a revision without them is refused below, by name.
        snapshot = snapshot_download(repo, revision=revision, allow_patterns=patterns, cache_dir=cache_dir)
    except Exception as error:
        raise _not_found(
            f"translation model not found: {at} is not in the Hugging Face cache ({cache}) "
            f"and could not be downloaded ({_first_line(error)}). Set {SETTING} to a local folder, "
            f"{REVISION_SETTING} to a revision that exists, allow hub access, or set PROMPT_TRANSLATION=off.",
            source=repo,
            cache=cache,
        ) from None
    return Path(snapshot)


def max_new_tokens(input_tokens: int, ratio: float = 2.0, extra: int = 8, ceiling: int = 512) -> int:
    """The most tokens a translation of ``input_tokens`` tokens may have."""
    return max(1, min(ceiling, math.ceil(ratio * input_tokens) + extra))


class MarianTranslator:
    """The MarianMT translator (see the module docstring).

    Args:
        source: hub id or local folder of a MarianMT model (``*-en``).
        device, dtype, threads: as the generator's (``auto``: CUDA and bf16 when there is a GPU,
            else the CPU and fp32).
        beams: beam search width (1: greedy).
        max_batch: texts per model call; a larger call is split.
        local_files_only: never ask the hub; None follows ``HF_HUB_OFFLINE``.
        cache_dir: the Hugging Face cache folder; None: the usual one.
        revision: the hub revision (branch, tag or commit hash) of a hub id ``source``.
    """

    translates = True

    def __init__(
        self,
        source: str | Path = DEFAULT_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        threads: int = 0,
        beams: int = 1,
        max_batch: int = 16,
        local_files_only: bool | None = None,
        cache_dir: str | Path | None = None,
        revision: str = DEFAULT_REVISION,
        name: str = "",
    ) -> None:
        if beams < 1 or max_batch < 1:
            raise ValueError("beams and max_batch must be at least 1")
        self.source = source
        self.name = name or str(source).rstrip("/").rsplit("/", 1)[-1]
        self.device_setting = device
        self.dtype_setting = dtype
        self.threads = threads
        self.beams = beams
        self.max_batch = max_batch
        self.local_files_only = local_files_only
        self.cache_dir = cache_dir
        self.revision = revision
        self.device: Any = None
        self.dtype: Any = None
        self.load_seconds = 0.0
        self.calls = 0  # model calls made (for tests and the benchmark)
        self._tiny_folder: Path | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._model: Any = None
        self._tokenizer: Any = None

    @classmethod
    def tiny(cls, folder: str | Path, **kwargs: Any) -> MarianTranslator:
        """The translator on the tiny random-weight model in ``folder``, built at ``start()`` if it
        is missing (on the translator's thread)."""
        kwargs.setdefault("name", "tiny-marian")
        kwargs.setdefault("local_files_only", True)
        translator = cls(Path(folder), **kwargs)
        translator._tiny_folder = Path(folder)
        return translator

    @property
    def random_weights(self) -> bool:
        """The tiny test model: its translations are gibberish, never shown as "understood as"."""
        return self._tiny_folder is not None

    # ----------------------------------------------------------------- lifecycle

    @property
    def started(self) -> bool:
        return self._model is not None

    async def start(self) -> None:
        if self.started:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marian")
        await asyncio.get_running_loop().run_in_executor(self._executor, self.load)

    async def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: executor.shutdown(wait=True))
        self._model = self._tokenizer = None

    def load(self) -> None:
        """Load the model on the calling thread (``start`` calls it on the translator's thread)."""
        import torch
        from transformers import MarianMTModel, MarianTokenizer
        from transformers.utils import logging as transformers_logging

        if self.started:
            return
        started = time.perf_counter()
        if self._tiny_folder is not None:
            from adapters.marian.tiny import ensure_tiny_translator

            ensure_tiny_translator(self._tiny_folder)
        folder = resolve_model(
            self.source, local_files_only=self.local_files_only, cache_dir=self.cache_dir, revision=self.revision
        )
        self.device = resolve_device(self.device_setting)
        self.dtype = resolve_dtype(self.dtype_setting, self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads or default_threads())
        bars = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()
        try:
            tokenizer = MarianTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = MarianMTModel.from_pretrained(
                str(folder), local_files_only=True, use_safetensors=True, dtype=self.dtype
            )
        except Exception as error:
            raise _not_found(
                f"translation model: could not load {folder} ({_first_line(error)}). Set {SETTING} to a "
                f"complete MarianMT folder or hub id (or PROMPT_TRANSLATION=off).",
                source=str(self.source),
            ) from None
        finally:
            if bars:
                transformers_logging.enable_progress_bar()
        self._tokenizer, self._model = tokenizer, model.to(self.device).eval()
        self.load_seconds = time.perf_counter() - started
        log.info(
            "translator %s loaded from %s in %.1fs on %s, %s",
            self.name,
            folder,
            self.load_seconds,
            self.device,
            self.dtype,
        )

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def model(self) -> Any:
        return self._model

    # ----------------------------------------------------------------- translation

    async def translate(self, texts: Sequence[str]) -> list[str]:
        texts = list(texts)
        if not texts:
            return []
        if not self.started:
            await self.start()
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.translate_sync, texts)

    def translate_sync(self, texts: Sequence[str], new_tokens: int | None = None) -> list[str]:
        """Translate on the calling thread, in batches of ``max_batch`` (``new_tokens``: a fixed
        bound instead of ``max_new_tokens`` of the input)."""
        import torch

        out: list[str] = []
        for at in range(0, len(texts), self.max_batch):
            chunk = list(texts[at : at + self.max_batch])
            batch = self._tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=512)
            batch = batch.to(self.device)
            bound = new_tokens or max_new_tokens(int(batch["input_ids"].shape[1]))
            with torch.inference_mode():
                ids = self._model.generate(**batch, num_beams=self.beams, max_new_tokens=bound, max_length=None)
            self.calls += 1
            out += self._tokenizer.batch_decode(ids, skip_special_tokens=True)
        return out
