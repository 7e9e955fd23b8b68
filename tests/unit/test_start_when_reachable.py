"""app._start_when_reachable: tries again after 1 s, 2 s, ... while the service is down, and gives
up as soon as the process is asked to stop (before a try, or in the pause between tries)."""

from __future__ import annotations

import asyncio
import logging
import time

from app import _start_when_reachable


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.tries = 0

    async def start(self) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise ConnectionRefusedError("down")


async def test_not_tried_when_already_stopping():
    component, started, stop = Flaky(0), [], asyncio.Event()
    stop.set()
    assert await _start_when_reachable(component, started, stop) is False
    assert component.tries == 0 and started == []


async def test_tries_again_after_one_second(caplog):
    component, started = Flaky(1), []
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="prompt2pic"):
        assert await _start_when_reachable(component, started, asyncio.Event()) is True
    assert 0.9 <= time.monotonic() - began < 3.0
    assert component.tries == 2 and started == [component]
    assert [r.getMessage() for r in caplog.records] == [
        "Flaky cannot start yet (ConnectionRefusedError); retrying in 1 s"
    ]


async def test_stop_cuts_the_pause_short_and_no_try_follows():
    component, started, stop = Flaky(100), [], asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, stop.set)
    began = time.monotonic()
    assert await _start_when_reachable(component, started, stop) is False
    assert time.monotonic() - began < 0.9
    assert component.tries == 1 and started == []
