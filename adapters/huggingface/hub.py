"""Finding a model on disk or in the Hugging Face hub cache, and the one-line errors when it is not
there: the parts that the Würstchen and MarianMT loaders share.

Weights are loaded from safetensors files only (``use_safetensors=True``): a pickle (``*.bin``,
``*.pt``, ``*.ckpt``) runs code when it is loaded, and torch's ``weights_only`` guard has been
bypassed before (CVE-2025-32434). A hub model is fetched at a revision (a branch, tag or commit
hash; ``main`` unless a setting pins it): the snapshot folder it lands in is that revision's."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from domain.errors import GenerationError, ModelNotFound

log = logging.getLogger(__name__)

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


def hub_cache_from_env() -> str:
    """The Hugging Face cache folder as the environment names it now (``HF_HUB_CACHE``, else
    ``HF_HOME``/hub, else ``XDG_CACHE_HOME``/huggingface/hub, else ~/.cache/huggingface/hub): the
    rules of ``huggingface_hub.constants``, read at call time rather than at its import."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return str(Path(explicit).expanduser())
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface")
    return str(Path(home).expanduser() / "hub")


def hub_endpoint() -> str:
    """The hub's address (``HF_ENDPOINT``, else huggingface.co), read at call time."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_unreachable(repo_id: str, timeout_s: float) -> str | None:
    """None when the hub answers for ``repo_id``'s ``model_index.json`` within ``timeout_s``
    (one HEAD request); else why not, in one line."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        endpoint = hub_endpoint()
        get_hf_file_metadata(hf_hub_url(repo_id, "model_index.json", endpoint=endpoint), timeout=timeout_s)
    except Exception as error:
        return first_line(error)
    return None


def download_size(
    repo_id: str, patterns: list[str], timeout_s: float = 10.0, revision: str | None = None
) -> int | None:
    """Bytes of the files of ``repo_id`` that match ``patterns`` (fnmatch), from the hub's file
    list; None when the hub does not say."""
    from fnmatch import fnmatch

    try:
        from huggingface_hub import HfApi

        info = HfApi(endpoint=hub_endpoint()).model_info(
            repo_id, revision=revision, files_metadata=True, timeout=timeout_s
        )
    except Exception:
        return None
    sizes = [f.size or 0 for f in info.siblings or () if any(fnmatch(f.rfilename, p) for p in patterns)]
    return sum(sizes) if sizes else None


def gigabytes(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 1e9:.1f} GB"


def repo_cache_folder(cache: str | Path, repo_id: str) -> Path:
    """Where the hub cache keeps ``repo_id`` (``models--<org>--<name>``)."""
    return Path(cache).expanduser() / ("models--" + repo_id.replace("/", "--"))


def bytes_under(folder: Path) -> int:
    """Bytes of the plain files under ``folder`` (the snapshots' links to blobs not counted twice)."""
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


_downloaded = [0]  # bytes fetched by the downloads of this process so far (for the metrics)


def downloaded_bytes() -> int:
    """Bytes the model downloads of this process have fetched so far (0: none ran)."""
    return _downloaded[0]


@contextlib.contextmanager
def download_progress(label: str, folder: Path, total: int | None, every_s: float = 10.0) -> Iterator[None]:
    """Log how far the download of ``label`` into ``folder`` has got, every ``every_s`` seconds
    while the block runs (the hub library's own bars go to a terminal, not to the log)."""
    done = threading.Event()
    before = bytes_under(folder) if folder.exists() else 0
    earlier = _downloaded[0]  # of the parts downloaded before this one

    def watch() -> None:
        while not done.wait(every_s):
            got = (bytes_under(folder) if folder.exists() else 0) - before
            _downloaded[0] = earlier + max(0, got)
            share = f" ({100 * got / total:.0f}%)" if total else ""
            log.info("downloading %s: %s of %s%s", label, gigabytes(got), gigabytes(total), share)

    watcher = threading.Thread(target=watch, name="download-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
