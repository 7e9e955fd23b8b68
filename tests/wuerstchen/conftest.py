"""Fixtures of the Würstchen adapter tests: the tiny model (built once per session, in the same
folder as the generator contract suite uses) and a started generator on it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from adapters.wuerstchen.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.getbasetemp() / "tiny-wuerstchen")


@pytest.fixture
async def tiny_generator(tiny_model):
    from adapters.wuerstchen.generator import WuerstchenGenerator

    prior, decoder = tiny_model
    gen = WuerstchenGenerator(prior, decoder, device="cpu", threads=1, max_batch=4, local_files_only=True)
    await gen.start()
    try:
        yield gen
    finally:
        await gen.stop()
