"""The pass-through ``PromptTranslator`` (``PROMPT_TRANSLATION=off``, and the fake generator):
texts stay as written and the domain does not even ask (``translates`` is False)."""

from __future__ import annotations

from collections.abc import Sequence


class IdentityTranslator:
    name = "none"
    translates = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def translate(self, texts: Sequence[str]) -> list[str]:
        return list(texts)
