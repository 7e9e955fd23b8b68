"""The bot's use cases on the memory adapters, with a recording Announcer (tests/use_cases/doubles.py)."""

from __future__ import annotations

import pytest

from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.user_store import MemoryUserStore
from domain.use_cases import SubmitPrompt
from domain.use_cases.admit import AdmitJobs
from domain.users import UserLimits
from tests.use_cases.doubles import NOW, Announcer


@pytest.fixture
async def bot():
    queue = MemoryJobQueue()
    await queue.start()
    store = MemoryUserStore()
    submit = SubmitPrompt(queue, default_width=256, default_height=256, seed_source=lambda: 7)
    announcer = Announcer()
    admit = AdmitJobs(submit, store, announcer, limits=UserLimits(max_in_flight=3, per_minute=10), clock=lambda: NOW)
    return queue, store, submit, announcer, admit
