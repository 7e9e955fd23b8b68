"""Würstchen's model files: finding the prior and decoder repositories and loading their parts.

``prior`` and ``decoder`` are hub ids (``warp-ai/wuerstchen-prior``, ``warp-ai/wuerstchen``) or
local folders in the hub layout (the tiny test model of :mod:`adapters.wuerstchen.tiny` is one).
diffusers 0.42 cannot build these pipelines with ``from_pretrained`` (the hub repos name their
library ``"wuerstchen"`` in ``model_index.json``), so each component is loaded with its own class
(``WuerstchenPrior``, ``CLIPTextModel``, ``CLIPTokenizer``, ``DDPMWuerstchenScheduler``,
``WuerstchenDiffNeXt``, ``PaellaVQModel``) and the pipelines are built from the parts, with the
pipelines' own settings (``latent_mean``, ``latent_dim_scale`` ...) read from ``model_index.json``.
A hub id is looked up in the local Hugging Face cache first; the hub is only asked when that
misses and hub access is allowed (``local_files_only`` / ``HF_HUB_OFFLINE``), at the revision the
settings pin (``WUERSTCHEN_PRIOR_REVISION`` / ``WUERSTCHEN_DECODER_REVISION``, ``main`` by
default). Weights are safetensors only: a part whose folder holds pickles alone is refused. When
the weights cannot be found a one-line :class:`domain.errors.ModelNotFound` says what was looked
for, where, and how to fix it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.huggingface.hub import (
    DEFAULT_REVISION,
    download_progress,
    download_size,
    first_line,
    gigabytes,
    has_safetensors,
    hub_cache_dir,
    hub_endpoint,
    looks_like_path,
    model_not_found,
    offline_from_env,
    pickles_only,
    repo_cache_folder,
)
from adapters.wuerstchen.pipelines import DECODER_DEFAULTS, PRIOR_DEFAULTS, Pipelines, make_pipelines

log = logging.getLogger(__name__)

PRIOR_PARTS = ("prior", "text_encoder", "tokenizer", "scheduler")
DECODER_PARTS = ("decoder", "text_encoder", "tokenizer", "scheduler", "vqgan")

# Parts that hold weights; the tokenizer and scheduler folders hold only json/txt files.
WEIGHT_PARTS = frozenset({"prior", "text_encoder", "decoder", "vqgan"})


def _weight_patterns(parts: Sequence[str], suffixes: Sequence[str]) -> list[str]:
    patterns = ["model_index.json"]
    for part in parts:
        patterns += [f"{part}/*{suffix}" for suffix in suffixes]
    return patterns


def _missing_parts(folder: Path, parts: Sequence[str]) -> list[str]:
    return [p for p in parts if not (folder / p).is_dir() or (p in WEIGHT_PARTS and not has_safetensors(folder / p))]


@dataclass(frozen=True)
class ModelRepo:
    """A model repository found on disk: a local folder or a snapshot in the hub cache."""

    kind: str  # "prior" or "decoder"
    source: str  # what the settings said
    path: Path
    from_hub: bool
    revision: str = DEFAULT_REVISION

    def describe(self) -> str:
        if not self.from_hub:
            return f"folder {self.path}"
        return f"hub repo {self.source!r} at revision {self.revision!r} (cached at {self.path})"

    @property
    def setting(self) -> str:
        return setting_name(self.kind)


def setting_name(kind: str) -> str:
    return f"WUERSTCHEN_{kind.upper()}"


def revision_setting(kind: str) -> str:
    return f"WUERSTCHEN_{kind.upper()}_REVISION"


def resolve_repo(
    source: str | Path,
    kind: str,
    parts: Sequence[str],
    *,
    local_files_only: bool | None = None,
    cache_dir: str | Path | None = None,
    revision: str = DEFAULT_REVISION,
) -> ModelRepo:
    """Find the ``kind`` ("prior"/"decoder") repository ``source`` on disk: a local folder as it
    is, a hub id at ``revision`` in the Hugging Face cache, or else downloaded from the hub when
    hub access is allowed (``local_files_only``; None follows ``HF_HUB_OFFLINE``). Only json/txt
    files and safetensors weights are fetched, never pickles. Raises ``ModelNotFound``."""
    text = str(source)
    setting = setting_name(kind)
    layout = ", ".join(f"{p}/" for p in parts)
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelRepo(kind, text, path.resolve(), from_hub=False)
    if isinstance(source, Path) or looks_like_path(text):
        example = "warp-ai/wuerstchen-prior" if kind == "prior" else "warp-ai/wuerstchen"
        raise model_not_found(
            f"Würstchen {kind} not found: folder {path} does not exist. Set {setting} to a folder "
            f"with {layout} (the hub layout) or to a hub id such as {example}.",
            kind=kind,
            source=text,
        )

    from huggingface_hub import snapshot_download

    offline = offline_from_env() if local_files_only is None else local_files_only
    cache = hub_cache_dir(cache_dir)
    patterns = _weight_patterns(parts, (".json", ".txt", ".safetensors"))
    at = f"hub repo {text!r} at revision {revision!r}"
    cached: str | None = None
    # The cache first: no network at all when the snapshot is there (any error: not in the cache).
    with contextlib.suppress(Exception):
        cached = snapshot_download(
            text, revision=revision, allow_patterns=patterns, local_files_only=True, cache_dir=cache_dir
        )
    if cached is not None and (offline or not _missing_parts(Path(cached), parts)):
        return ModelRepo(kind, text, Path(cached), from_hub=True, revision=revision)
    if offline:
        raise model_not_found(
            f"Würstchen {kind} not found: {at} is not in the Hugging Face cache ({cache}) "
            f"and hub access is off (HF_HUB_OFFLINE / local_files_only). Set {setting} to a local "
            f"folder with {layout} (or {revision_setting(kind)} to a cached revision) or allow hub access.",
            kind=kind,
            source=text,
            cache=cache,
        )
    size = download_size(text, patterns, revision=revision)
    log.info(
        "downloading %s at revision %s (%s) from the Hugging Face hub into %s", text, revision, gigabytes(size), cache
    )
    try:
        with download_progress(text, repo_cache_folder(cache, text), size):
            snapshot = snapshot_download(text, revision=revision, allow_patterns=patterns, cache_dir=cache_dir)
    except Exception as error:
        raise model_not_found(
            f"Würstchen {kind} not found: {at} is not in the Hugging Face cache ({cache}) "
            f"and could not be downloaded from {hub_endpoint()} ({first_line(error)}). Set {setting} to a local "
            f"folder with {layout}, {revision_setting(kind)} to a revision that exists, or allow hub access.",
            kind=kind,
            source=text,
            cache=cache,
        ) from None
    return ModelRepo(kind, text, Path(snapshot), from_hub=True, revision=revision)


def check_layout(repo: ModelRepo, parts: Sequence[str]) -> None:
    """Raise ``ModelNotFound`` naming the parts (or their weights) that ``repo`` lacks; a part
    with pickle weights only is named as refused."""
    missing = _missing_parts(repo.path, parts)
    pickled = {p: pickles_only(repo.path / p) for p in missing if p in WEIGHT_PARTS and (repo.path / p).is_dir()}
    pickled = {p: names for p, names in pickled.items() if names}
    if pickled:
        found = ", ".join(f"{p}/{names[0]}" for p, names in pickled.items())
        raise model_not_found(
            f"Würstchen {repo.kind}: {repo.describe()} has pickle weights only ({found}), which are "
            f"refused (loading a pickle can run code). Set {repo.setting} to a folder with "
            f"*.safetensors weights (save_pretrained writes them) or {revision_setting(repo.kind)} "
            f"to a hub revision that has them.",
            kind=repo.kind,
            source=repo.source,
            missing=missing,
        )
    if missing:
        raise model_not_found(
            f"Würstchen {repo.kind} incomplete: {repo.describe()} lacks {', '.join(m + '/' for m in missing)}"
            f" (or its safetensors weights). Set {repo.setting} to a folder with "
            f"{', '.join(p + '/' for p in parts)} (the hub layout) or to the hub id "
            f"({revision_setting(repo.kind)}: a revision that has them).",
            kind=repo.kind,
            source=repo.source,
            missing=missing,
        )


def pipeline_config(repo: ModelRepo, defaults: dict[str, float]) -> dict[str, float]:
    """The pipeline's own numbers from model_index.json (the parts of it diffusers can use)."""
    config = dict(defaults)
    try:
        index = json.loads((repo.path / "model_index.json").read_text())
    except (OSError, ValueError):
        return config
    for key in defaults:
        if isinstance(index.get(key), (int, float)):
            config[key] = float(index[key])
    return config


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


def _load_decoder(*args: Any, **kwargs: Any) -> Any:
    from diffusers.pipelines.deprecated.wuerstchen import WuerstchenDiffNeXt

    with skip_decoder_weight_init():  # the checkpoint sets every weight
        return WuerstchenDiffNeXt.from_pretrained(*args, **kwargs)


def load_part(repo: ModelRepo, part: str, loader: Callable[..., Any], **kwargs: Any) -> Any:
    """``loader(repo, subfolder=part)`` from the folder found on disk (the hub revision's snapshot
    for a hub id), weights from safetensors only; any failure a one-line ``ModelNotFound``."""
    if part in WEIGHT_PARTS:
        kwargs["use_safetensors"] = True  # never fall back to a pickle
    try:
        return loader(str(repo.path), subfolder=part, local_files_only=True, **kwargs)
    except Exception as error:
        raise model_not_found(
            f"Würstchen {repo.kind}: could not load {part}/ from {repo.describe()} ({first_line(error)}). "
            f"Set {repo.setting} to a complete model folder or the hub id.",
            kind=repo.kind,
            source=repo.source,
            part=part,
        ) from None


def find_repos(
    prior: str | Path,
    decoder: str | Path,
    *,
    local_files_only: bool | None = None,
    cache_dir: str | Path | None = None,
    prior_revision: str = DEFAULT_REVISION,
    decoder_revision: str = DEFAULT_REVISION,
) -> tuple[ModelRepo, ModelRepo]:
    """The prior and decoder repositories, each complete (or ``ModelNotFound``)."""
    prior_repo = resolve_repo(
        prior, "prior", PRIOR_PARTS, local_files_only=local_files_only, cache_dir=cache_dir, revision=prior_revision
    )
    decoder_repo = resolve_repo(
        decoder,
        "decoder",
        DECODER_PARTS,
        local_files_only=local_files_only,
        cache_dir=cache_dir,
        revision=decoder_revision,
    )
    check_layout(prior_repo, PRIOR_PARTS)
    check_layout(decoder_repo, DECODER_PARTS)
    return prior_repo, decoder_repo


def load_pipelines(prior_repo: ModelRepo, decoder_repo: ModelRepo, *, device: Any, dtype: Any) -> Pipelines:
    """Load every part of the two repositories and build the pipelines on ``device``."""
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # no "Loading weights" bars in the worker's log
    try:
        return _assemble(prior_repo, decoder_repo, device, dtype)
    finally:
        if bars:
            transformers_logging.enable_progress_bar()


def _assemble(prior_repo: ModelRepo, decoder_repo: ModelRepo, device: Any, dtype: Any) -> Pipelines:
    from diffusers import DDPMWuerstchenScheduler
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenPrior
    from transformers import CLIPTextModel, CLIPTokenizer

    return make_pipelines(
        prior_tokenizer=load_part(prior_repo, "tokenizer", CLIPTokenizer.from_pretrained),
        prior_text_encoder=load_part(prior_repo, "text_encoder", CLIPTextModel.from_pretrained, dtype=dtype),
        prior=load_part(prior_repo, "prior", WuerstchenPrior.from_pretrained, torch_dtype=dtype),
        prior_scheduler=load_part(prior_repo, "scheduler", DDPMWuerstchenScheduler.from_pretrained),
        decoder_tokenizer=load_part(decoder_repo, "tokenizer", CLIPTokenizer.from_pretrained),
        decoder_text_encoder=load_part(decoder_repo, "text_encoder", CLIPTextModel.from_pretrained, dtype=dtype),
        decoder=load_part(decoder_repo, "decoder", _load_decoder, torch_dtype=dtype),
        decoder_scheduler=load_part(decoder_repo, "scheduler", DDPMWuerstchenScheduler.from_pretrained),
        vqgan=load_part(decoder_repo, "vqgan", PaellaVQModel.from_pretrained, torch_dtype=dtype),
        prior_config=pipeline_config(prior_repo, PRIOR_DEFAULTS),
        decoder_config=pipeline_config(decoder_repo, DECODER_DEFAULTS),
        device=device,
    )
