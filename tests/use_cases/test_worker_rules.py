"""The worker applies the bot's rules to every job it takes (``check_job`` and the prompt filter):
a job that breaks them, whoever put it on the queue, fails honestly (an ``INVALID_JOB`` or
``PROMPT_REFUSED`` result the user is told about) without reaching the generator, and the
consumer goes on. On the in-memory queue, which keeps messages encoded as Kafka does; the same on
the real broker: tests/kafka/test_dead_letters.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from adapters.embedded.generator import FakeGenerator
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from config.safety import prompt_filter
from config.settings import Settings
from domain.models import ErrorCode, Job, JobStatus, Result, image_key
from domain.safety_gate import SafetyGate
from domain.use_cases import ProcessJobs
from domain.validation import Limits


class RecordingGenerator(FakeGenerator):
    """The fake generator that remembers every request it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[str] = []
        self.negatives: list[str] = []

    async def generate(self, requests, progress=None):
        self.prompts += [r.prompt for r in requests]
        self.negatives += [r.negative_prompt for r in requests]
        return await super().generate(requests, progress)


def job(n: int, **fields) -> Job:
    values = dict(user_id=n, chat_id=n, prompt=f"a red fox number {n}", width=512, height=512, seed=n)
    return Job(**{**values, **fields})


BAD_JOBS = {
    "1x1 with a 2-million-character prompt": dict(width=1, height=1, prompt="x" * 2_000_000),
    "2-million-character prompt": dict(prompt="a fox " * 333_334),
    "tiny": dict(width=64, height=64),
    "zero": dict(width=0, height=512),
    "negative": dict(width=-512, height=512),
    "huge": dict(width=8192, height=8192),
    "not a multiple of 128": dict(width=500, height=300),
    "seed below zero": dict(seed=-1),
    "seed above 32 bits": dict(seed=2**32),
    "empty prompt": dict(prompt=""),
    "blank prompt": dict(prompt=" \u200b\u2060 "),
    "only punctuation": dict(prompt="?!?!"),
    "control characters": dict(prompt="a fox\x1b[2J\x00"),
    "lone surrogate": dict(prompt="a fox \ud800"),
    "negative prompt too long": dict(negative_prompt="blur " * 500),
}


async def publish(queue: MemoryJobQueue, j: Job) -> None:
    """On the queue as any JSON writer puts it (escaped: a lone surrogate travels too)."""
    await queue.publish_raw_job(json.dumps({"v": 1, "type": "job", "data": j.model_dump(mode="json")}).encode())


@pytest.fixture
async def rig(tmp_path):
    queue = MemoryJobQueue()
    storage = LocalFolderStorage(tmp_path)
    await queue.start()
    await storage.start()
    generator = RecordingGenerator()
    gate = SafetyGate(prompt_filter=prompt_filter(Settings(_env_file=None)))
    worker = ProcessJobs(
        queue, generator, storage, safety=gate, limits=Limits(), max_batch=4, batch_wait_s=0.01, poll_timeout_s=0.1
    )
    yield queue, storage, generator, worker
    await generator.stop()


async def results_of(queue: MemoryJobQueue) -> dict[str, Result]:
    out = {}
    for d in await queue.receive_events(1000, 0.2):
        if isinstance(d.message, Result):
            out[d.message.job_id] = d.message
        await d.ack()
    return out


async def test_out_of_range_jobs_fail_honestly_without_generating(rig):
    queue, storage, generator, worker = rig
    bad = {name: job(i, **fields) for i, (name, fields) in enumerate(BAD_JOBS.items(), start=1)}
    refused = job(90, prompt="porno in the park")
    good = job(99, prompt="a calm lake at dawn")
    for j in [*bad.values(), refused, good]:
        await publish(queue, j)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))  # the consumer itself: it must not stop on them
    results: dict[str, Result] = {}
    for _ in range(100):
        results |= await results_of(queue)
        if len(results) == len(bad) + 2:
            break
    stop.set()
    await asyncio.wait_for(task, 10)
    task.result()  # ended cleanly, no exception
    assert generator.prompts == ["a calm lake at dawn"]  # only the good job reached the generator
    assert results[good.job_id].status == JobStatus.DONE
    for name, j in bad.items():
        result = results[j.job_id]
        assert (result.status, result.error_code) == (JobStatus.FAILED, ErrorCode.INVALID_JOB), name
        assert (result.chat_id, result.user_id) == (j.chat_id, j.user_id), name  # the user is told
        assert len(result.prompt) <= Limits().max_prompt_chars, name  # no megabytes echoed back
        assert not any(ch in result.prompt for ch in "\x1b\x00\ud800\u200b"), name
        assert not await storage.exists(image_key(j.job_id)), name
    assert results[refused.job_id].error_code == ErrorCode.PROMPT_REFUSED
    assert await queue.backlog() == 0  # every job acked: nothing is delivered again


async def test_the_shown_prompt_of_an_invalid_job_is_a_clean_excerpt(rig):
    queue, _, generator, worker = rig
    bad = job(1, width=1, height=1, prompt="a  fox\u202e in\u200b snow " + "z" * 5000)
    await queue.publish_job(bad)
    assert await worker.run_once() == 0
    [result] = (await results_of(queue)).values()
    assert result.error_code == ErrorCode.INVALID_JOB
    assert result.prompt.startswith("a fox in snow zzz") and len(result.prompt) == 1000
    assert generator.prompts == []


async def test_invisible_characters_are_dropped_before_the_model_and_the_caption(rig):
    queue, _, generator, worker = rig
    sneaky = job(5, prompt="a \u202ecat\u202c on\u200b a\u2066 mat\u2069\ufeff", negative_prompt="\u200fblur\u200e")
    await queue.publish_job(sneaky)
    assert await worker.run_once() == 1
    [result] = (await results_of(queue)).values()
    assert result.status == JobStatus.DONE
    assert generator.prompts == ["a cat on a mat"] and generator.negatives == ["blur"]
    assert result.prompt == "a cat on a mat"  # what the caption shows


async def test_the_worker_applies_its_own_limits(tmp_path):
    """MAX_PROMPT_CHARS, MIN_SIDE and MAX_SIDE reach the worker as they reach the bot."""
    queue = MemoryJobQueue()
    await queue.start()
    generator = RecordingGenerator()
    worker = ProcessJobs(
        queue, generator, LocalFolderStorage(tmp_path), limits=Limits(max_prompt_chars=10, max_side=512)
    )
    await queue.publish_job(job(1, prompt="a fox in the snow"))  # 17 characters
    await queue.publish_job(job(2, prompt="a fox", width=1024, height=1024))
    assert await worker.run_once() == 0
    results = await results_of(queue)
    assert {r.error_code for r in results.values()} == {ErrorCode.INVALID_JOB} and len(results) == 2
    assert generator.prompts == []
