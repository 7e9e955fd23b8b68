"""Retrying with exponential backoff, for the use cases (the domain imports only pydantic and the
standard library, so not tenacity, which the adapters use).

The waits are those of tenacity's ``wait_exponential(multiplier=first_s, max=max_s)``, which the
worker used before: ``first_s``, then twice, four times as long..., never above ``max_s``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# Told after every failed try: its number (1 for the first), the error, and the wait before the
# next try (None: no more tries, the error is raised).
OnFailure = Callable[[int, Exception, float | None], None]


@dataclass(frozen=True)
class Backoff:
    """How often and how long to retry a call that raised an ``Exception`` (never a
    ``BaseException`` such as a cancellation): at most ``attempts`` tries in all (None: until
    it succeeds), waiting ``first_s`` after the first failure, doubling up to ``max_s``."""

    first_s: float
    max_s: float = math.inf
    attempts: int | None = None

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row."""
        try:
            wait = self.first_s * 2 ** (failures - 1)
        except OverflowError:
            return self.max_s
        return max(0.0, min(wait, self.max_s))

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        on_failure: OnFailure | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> T:
        """``attempt()``'s result once it succeeds; its last error when the tries run out."""
        failures = 0
        while True:
            try:
                return await attempt()
            except Exception as exc:
                failures += 1
                last = self.attempts is not None and failures >= self.attempts
                wait = None if last else self.delay(failures)
                if on_failure is not None:
                    on_failure(failures, exc, wait)
                if wait is None:
                    raise
                await sleep(wait)
