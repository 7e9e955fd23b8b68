"""The image check that checks nothing (``SAFETY_IMAGE_ACTION=off``, ``SAFETY_IMAGE_DETECTOR=none``,
or a bot-only install without the detector): every picture passes."""

from __future__ import annotations

from collections.abc import Sequence

from domain.safety import CLEAN, ImageVerdict


class NoImageCheck:
    name = "none"
    inspects = False  # SafetyGate does not call it, and counts no picture as checked

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def check(self, pngs: Sequence[bytes]) -> list[ImageVerdict]:
        return [CLEAN for _ in pngs]
