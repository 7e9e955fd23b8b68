"""Finding a model on disk or in the Hugging Face hub cache, and the one-line errors when it is not
there: the parts that the Würstchen and MarianMT loaders share.

Weights are loaded from safetensors files only (``use_safetensors=True``): a pickle (``*.bin``,
``*.pt``, ``*.ckpt``) runs code when it is loaded, and torch's ``weights_only`` guard has been
bypassed before (CVE-2025-32434). A hub model is fetched at a revision (a branch, tag or commit
hash; ``main`` unless a setting pins it): the snapshot folder it lands in is that revision's."""

from __future__ import annotations

import os
from pathlib import Path

from domain.errors import GenerationError, ModelNotFound

DEFAULT_REVISION = "main"
# Weight files that are pickles: never loaded, never downloaded.
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def has_safetensors(folder: Path) -> bool:
    return any(folder.glob("*.safetensors"))


def pickles_only(folder: Path) -> list[str]:
    """The pickle weight files of ``folder`` when it has no safetensors file (else nothing)."""
    if has_safetensors(folder):
        return []
    return sorted(p.name for pattern in PICKLE_PATTERNS for p in folder.glob(pattern))


def one_line_error(cls: type[GenerationError], message: str, **params: object) -> GenerationError:
    """A domain error whose text is the one-line ``message`` (the params stay for translations)."""
    error = cls(message=message, **params)
    error.args = (message,)
    return error


def model_not_found(message: str, **params: object) -> ModelNotFound:
    """``ModelNotFound`` with the one-line ``message``."""
    error = one_line_error(ModelNotFound, message, **params)
    assert isinstance(error, ModelNotFound)
    return error


def offline_from_env() -> bool:
    """``HF_HUB_OFFLINE`` is set: the hub must not be asked."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_path(source: str) -> bool:
    """``source`` names a folder rather than a hub id (``owner/name``)."""
    return (
        source.startswith((".", "~", os.sep))
        or (os.altsep is not None and os.altsep in source)
        or source.count("/") > 1
        or Path(source).exists()
    )


def hub_cache_dir(cache_dir: str | Path | None) -> str:
    """The Hugging Face cache folder in use: ``cache_dir``, or the library's default."""
    if cache_dir:
        return str(cache_dir)
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except (ImportError, AttributeError):
        return "~/.cache/huggingface/hub"


def first_line(error: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message`` of a library's error, for a one-line message of ours."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:limit]}" if text else type(error).__name__
