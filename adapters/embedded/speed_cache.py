"""The worker's calibration kept in a small JSON file (the ``SpeedCache`` port).

``{"version": 1, "entries": {<identity>: {"figures": {<request signature>: seconds}, "at": time}}}``:
one entry per machine, model, dtype and backend (``domain.speed.identity_key``), so workers of
different kinds may share a cache folder. Written to a temporary file and renamed, so a crash
never leaves half a file; an unreadable file counts as empty (the worker times itself again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VERSION = 1


class JsonSpeedCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("calibration cache %s unreadable (%s): timing again", self.path, type(exc).__name__)
            return {}
        if not isinstance(doc, dict) or doc.get("version") != VERSION or not isinstance(doc.get("entries"), dict):
            return {}
        return doc["entries"]

    async def load(self, key: str) -> dict[str, float]:
        entries = await asyncio.to_thread(self._read)
        figures = entries.get(key, {}).get("figures", {})
        return {str(k): float(v) for k, v in figures.items() if isinstance(v, int | float) and v > 0}

    async def save(self, key: str, figures: Mapping[str, float]) -> None:
        def write() -> None:
            entries = self._read()
            entries[key] = {"figures": dict(figures), "at": time.time()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"version": VERSION, "entries": entries}, indent=1, ensure_ascii=False))
            os.replace(tmp, self.path)

        await asyncio.to_thread(write)
