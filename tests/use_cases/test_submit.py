"""Submitting a prompt (SubmitPrompt) to a queue that is down."""

from __future__ import annotations

import pytest

from adapters.embedded.queue import MemoryJobQueue
from domain.errors import QueueUnavailable
from domain.use_cases import SubmitPrompt


async def test_submit_refuses_when_the_queue_is_down():
    class DownQueue(MemoryJobQueue):
        async def publish_job(self, job):
            raise ConnectionError("broker unreachable")

    with pytest.raises(QueueUnavailable):
        await SubmitPrompt(DownQueue())(user_id=1, chat_id=1, prompt="fox")
