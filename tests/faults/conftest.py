"""Fixtures of the fault tests: a rig of real processes on the session's broker and S3 server."""

from __future__ import annotations

import pytest

from tests.faults.rig import Rig


@pytest.fixture
async def rig(kafka_bootstrap, s3_server, telegram, tmp_path):
    r = await Rig(bootstrap=kafka_bootstrap, s3_url=s3_server.url, telegram=telegram, folder=tmp_path / "rig").start()
    yield r
    await r.close()
