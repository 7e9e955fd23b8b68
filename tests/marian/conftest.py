"""Fixtures of the MarianMT adapter tests: a started translator on the tiny random-weight model
(``tiny_marian``, in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
async def translator(tiny_marian):
    from adapters.marian.translator import MarianTranslator

    t = MarianTranslator(tiny_marian, device="cpu", threads=1, local_files_only=True)
    await t.start()
    try:
        yield t
    finally:
        await t.stop()
