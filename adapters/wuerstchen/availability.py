"""Whether the real Würstchen model can run here: ``GENERATOR=auto``'s choice between the model
and the Pillow placeholder.

Checked cheaply, before anything loads: the worker extra by its modules' specs (nothing is
imported, so a process that ends up with the placeholder never pays torch's import), each
repository in the Hugging Face cache (``snapshot_download(local_files_only=True)``, no network),
and only when one is missing, the hub itself: one HEAD request with a short timeout, unless
``HF_HUB_OFFLINE`` forbids it. Every step goes into ``tried``, so the log can say exactly what was
looked for and where.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from adapters.huggingface.hub import (
    download_size,
    gigabytes,
    hub_endpoint,
    hub_unreachable,
    looks_like_path,
    offline_from_env,
)
from adapters.wuerstchen.model_files import (
    DECODER_PARTS,
    PRIOR_PARTS,
    _missing_parts,
    _weight_patterns,
    resolve_repo,
)
from domain.errors import ModelNotFound

# The modules of the worker extra that the real model needs.
WORKER_MODULES = ("torch", "diffusers", "transformers")


@dataclass(frozen=True)
class ModelCheck:
    """The outcome: ``usable`` or not, what was tried (one clause each), and the hub repos that
    the first start downloads, with their size when the hub said it."""

    usable: bool
    tried: tuple[str, ...]
    to_download: tuple[str, ...] = field(default=())
    download_bytes: int | None = None

    def summary(self) -> str:
        return "; ".join(self.tried)


def check_real_model(prior: str | Path, decoder: str | Path, *, cache_dir: str, timeout_s: float = 3.0) -> ModelCheck:
    """Can ``prior`` and ``decoder`` (hub ids or local folders) run here, from ``cache_dir`` or
    downloaded into it?"""
    tried: list[str] = []
    missing = [name for name in WORKER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        tried.append(f"the worker extra is not installed ({', '.join(missing)} cannot be imported)")
        return ModelCheck(False, tuple(tried))
    tried.append("the worker extra is installed")
    to_download: list[str] = []
    for source, kind, parts in ((prior, "prior", PRIOR_PARTS), (decoder, "decoder", DECODER_PARTS)):
        text = str(source)
        local = isinstance(source, Path) or looks_like_path(text)
        try:
            repo = resolve_repo(source, kind, parts, local_files_only=True, cache_dir=cache_dir)
        except ModelNotFound:
            if local:
                tried.append(f"the {kind} folder {text} does not exist")
                return ModelCheck(False, tuple(tried))
            tried.append(f"the {kind} {text!r} is not in the Hugging Face cache {cache_dir}")
            to_download.append(text)
            continue
        lacking = _missing_parts(repo.path, parts)
        if not lacking:
            tried.append(f"the {kind} is there: {repo.describe()}")
        elif local:
            tried.append(f"the {kind} folder {repo.path} lacks {', '.join(p + '/' for p in lacking)}")
            return ModelCheck(False, tuple(tried))
        else:
            tried.append(f"the {kind} {text!r} is only partly in the Hugging Face cache {cache_dir}")
            to_download.append(text)
    if not to_download:
        return ModelCheck(True, tuple(tried))
    if offline_from_env():
        tried.append("HF_HUB_OFFLINE is set, so the hub was not asked")
        return ModelCheck(False, tuple(tried))
    for repo_id in to_download:
        why = hub_unreachable(repo_id, timeout_s)
        if why is not None:
            tried.append(f"the hub {hub_endpoint()} did not answer for {repo_id} within {timeout_s:g} s ({why})")
            return ModelCheck(False, tuple(tried))
    patterns = {
        str(prior): _weight_patterns(PRIOR_PARTS, (".json", ".txt", ".safetensors")),
        str(decoder): _weight_patterns(DECODER_PARTS, (".json", ".txt", ".safetensors")),
    }
    sizes = [download_size(repo_id, patterns[repo_id], timeout_s) for repo_id in to_download]
    total = None if any(size is None for size in sizes) else sum(size or 0 for size in sizes)
    tried.append(
        f"the hub {hub_endpoint()} answers: {' and '.join(to_download)} ({gigabytes(total)}) "
        f"will be downloaded into {cache_dir} at the first start"
    )
    return ModelCheck(True, tuple(tried), tuple(to_download), total)
