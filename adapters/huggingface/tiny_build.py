"""A tiny random-weight model folder, built by code once and reused afterwards.

Both tiny test models (Würstchen's and MarianMT's) are written by code, not downloaded. A marker
file in the folder records the version of that code; a folder without it, or with another version,
is built again. A build goes into a private staging folder next to the target and is renamed into
place, so several processes may ask at once: each builds on its own and the first rename wins.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TinyModelBuild:
    """How one tiny model is built: ``build(folder)`` writes it into a new folder; ``marker`` is the
    file name of its version record (``{"version": version, "seed": seed}``)."""

    build: Callable[[Path], None]
    marker: str
    version: int
    seed: int

    def is_built(self, folder: Path) -> bool:
        try:
            return json.loads((folder / self.marker).read_text()).get("version") == self.version
        except (OSError, ValueError):
            return False

    def rebuild(self, folder: str | Path) -> Path:
        """Build the model into ``folder``, replacing what is there; returns ``folder``."""
        folder = Path(folder)
        staging = self._build_staged(folder)
        try:
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def ensure(self, folder: str | Path) -> Path:
        """The model in ``folder``, built first if it is missing or outdated; returns ``folder``."""
        folder = Path(folder)
        if self.is_built(folder):
            return folder
        staging = self._build_staged(folder)
        try:
            if self.is_built(folder):  # someone else finished first: keep theirs
                return folder
            if folder.exists():  # an outdated or broken build
                shutil.rmtree(folder, ignore_errors=True)
            try:
                os.replace(staging, folder)
            except OSError:
                if not self.is_built(folder):
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def _build_staged(self, folder: Path) -> Path:
        """Build into a private folder next to ``folder`` and write the marker last."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.parent / f".{folder.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self.build(staging)
            (staging / self.marker).write_text(json.dumps({"version": self.version, "seed": self.seed}) + "\n")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging
