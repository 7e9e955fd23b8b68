"""Fixtures that start real services (the Kafka broker, moto's S3 server, MinIO) live in
tests/fixtures; a service that cannot start fails its tests, it never skips them."""

import os

import pytest

from tests.fakes.telegram import FakeBotAPI

# GENERATOR_DTYPE=auto takes bf16 on CPUs with native bf16 (AMX, AVX512-BF16): the suite runs as on a
# CPU without it, so that its pictures and tolerances do not depend on the machine; the tests of
# the choice and of bf16 (tests/wuerstchen/test_cpu_speed.py) set the check themselves.
os.environ.setdefault("P2P_CPU_BF16", "0")

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.s3",
    "tests.fixtures.s3rver",
    "tests.fixtures.minio",
    "tests.fixtures.postgres",
]


@pytest.fixture
async def telegram():
    """The local fake Bot API server, for the real aiogram stack to talk to."""
    server = FakeBotAPI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory):
    """The tiny random-weight MarianMT model, built once per session (tests/marian, tests/telegram)."""
    from adapters.marian.tiny import ensure_tiny_translator

    return ensure_tiny_translator(tmp_path_factory.getbasetemp() / "tiny-marian")
