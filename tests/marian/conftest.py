"""Fixtures of the MarianMT adapter tests: the tiny random-weight model (built once per session)
and a started translator on it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory):
    from adapters.marian.tiny import ensure_tiny_translator

    return ensure_tiny_translator(tmp_path_factory.getbasetemp() / "tiny-marian")


@pytest.fixture
async def translator(tiny_marian):
    from adapters.marian.translator import MarianTranslator

    t = MarianTranslator(tiny_marian, device="cpu", threads=1, local_files_only=True)
    await t.start()
    try:
        yield t
    finally:
        await t.stop()
