"""The image check with NudeNet: its detector (a YOLOv8n ONNX model, 320x320, that ships inside
the ``nudenet`` PyPI package: nothing is downloaded) run by onnxruntime on the CPU, on a thread of
its own, never on the event loop.

NudeNet reports body parts by class (``FEMALE_BREAST_EXPOSED``, ``FACE_MALE``, ...) with a score;
a picture is flagged when a detection of one of ``categories`` reaches ``threshold``. The
library's own pre- and post-processing are used as they are (so scores mean what NudeNet's
authors measured); it keeps detections from 0.25 up, so lower thresholds act as 0.25.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from domain.safety import Detection, ImageVerdict

log = logging.getLogger(__name__)

# NudeNet 3.4's classes, in its model's order.
LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
DEFAULT_CATEGORIES = (
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)


def _detector(threads: int, spinning: bool = False) -> Any:
    """NudeNet's ``NudeDetector`` with an onnxruntime session we configure (CPU, ``threads``
    intra-op threads; 0: onnxruntime's default), the model file being the one in the package.
    ``spinning``: onnxruntime's threads busy-wait between runs (its default). Off here, so that
    between checks the cores go back to the generator; it made no measurable difference to the
    check's own time (docs/benchmarks.md)."""
    import onnxruntime
    from nudenet import NudeDetector

    class _Configured(NudeDetector):
        def __init__(self) -> None:
            import nudenet.nudenet as module

            options = onnxruntime.SessionOptions()
            # No busy-waiting between runs: the CPU goes back to the generator at once.
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            if threads > 0:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            model = os.path.join(os.path.dirname(module.__file__), "320n.onnx")
            self.onnx_session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            self.input_width = self.input_height = 320
            self.input_name = self.onnx_session.get_inputs()[0].name

    return _Configured()


def _decode(png: bytes) -> Any:
    """The picture as OpenCV's BGR array (what NudeNet reads from a file), for any PNG mode."""
    import cv2
    import numpy as np

    mat = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if mat is None:
        raise ValueError("not a decodable image")
    return mat


class NudeNetCheck:
    name = "nudenet"
    inspects = True

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        categories: Sequence[str] = DEFAULT_CATEGORIES,
        threads: int = 0,
        spinning: bool = False,
    ) -> None:
        unknown = sorted(set(categories) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown NudeNet categories {unknown}; known: {', '.join(LABELS)}")
        self.threshold = threshold
        self.categories = frozenset(categories)
        self.threads = threads
        self.spinning = spinning
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nudenet")
        self._model: Any = None
        self._loading: asyncio.Future[Any] | None = None

    async def start(self) -> None:
        await self._ensure_model()

    async def stop(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _ensure_model(self) -> Any:
        if self._model is not None:
            return self._model
        if self._loading is None:
            loop = asyncio.get_running_loop()
            self._loading = asyncio.ensure_future(
                loop.run_in_executor(self._executor, _detector, self.threads, self.spinning)
            )
        self._model = await asyncio.shield(self._loading)
        log.info("NudeNet image check loaded (threshold %.2f, %d categories)", self.threshold, len(self.categories))
        return self._model

    def _verdicts(self, pngs: Sequence[bytes]) -> list[ImageVerdict]:
        """On the check's thread: detect, then judge each picture."""
        out = []
        for png in pngs:
            started = time.perf_counter()
            found = self._model.detect(_decode(png))
            detections = tuple(Detection(d["class"], float(d["score"])) for d in found)
            flagged = tuple(
                sorted({d.category for d in detections if d.category in self.categories and d.score >= self.threshold})
            )
            out.append(ImageVerdict(bool(flagged), flagged, detections, time.perf_counter() - started))
        return out

    async def check(self, pngs: Sequence[bytes]) -> list[ImageVerdict]:
        await self._ensure_model()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verdicts, list(pngs))
