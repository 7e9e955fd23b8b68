"""The domain's retry policy (``domain/retry.py``): the same waits as tenacity's
``wait_exponential``, which the worker used before, a limit on the tries, and every failure told."""

from __future__ import annotations

import asyncio

import pytest
from tenacity import RetryCallState, wait_exponential

from domain.retry import Backoff


def tenacity_wait(first_s: float, max_s: float | None, failures: int) -> float:
    wait = wait_exponential(multiplier=first_s) if max_s is None else wait_exponential(multiplier=first_s, max=max_s)
    state = RetryCallState(None, None, (), {})
    state.attempt_number = failures
    return wait(state)


@pytest.mark.parametrize(("first_s", "max_s"), [(0.5, None), (0.5, 30.0), (1.0, 30.0), (0.0, 30.0)])
def test_the_waits_are_tenacitys(first_s, max_s):
    backoff = Backoff(first_s=first_s) if max_s is None else Backoff(first_s=first_s, max_s=max_s)
    assert [backoff.delay(n) for n in range(1, 12)] == [tenacity_wait(first_s, max_s, n) for n in range(1, 12)]


def test_a_long_run_of_failures_waits_the_cap_and_does_not_overflow():
    assert Backoff(first_s=0.5, max_s=30.0).delay(5000) == 30.0


async def test_the_tries_run_out_and_every_failure_is_told():
    calls, told, slept = [], [], []

    async def attempt() -> str:
        calls.append(1)
        raise ConnectionError(f"try {len(calls)}")

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def on_failure(attempt_number: int, exc: Exception, wait: float | None) -> None:
        told.append((attempt_number, str(exc), wait))

    with pytest.raises(ConnectionError, match="try 3"):
        await Backoff(first_s=0.5, attempts=3).call(attempt, on_failure=on_failure, sleep=sleep)
    assert told == [(1, "try 1", 0.5), (2, "try 2", 1.0), (3, "try 3", None)]
    assert slept == [0.5, 1.0] and len(calls) == 3


async def test_without_a_limit_it_tries_until_it_succeeds():
    failures = iter([OSError("a"), OSError("b"), OSError("c")])

    async def attempt() -> int:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return 42

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    assert await Backoff(first_s=1.0, max_s=3.0).call(attempt, sleep=sleep) == 42
    assert slept == [1.0, 2.0, 3.0]


async def test_a_cancellation_is_not_retried():
    calls = []

    async def attempt() -> None:
        calls.append(1)
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await Backoff(first_s=0.0).call(attempt)
    assert calls == [1]
