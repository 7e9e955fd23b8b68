"""The in-memory queue (adapters/embedded/queue.py) beyond the queue contract: work owed when the
process stops is kept in its state file and owed again after a restart."""

from __future__ import annotations

from adapters.embedded.queue import MemoryJobQueue
from domain.use_cases import SubmitPrompt


async def test_memory_queue_keeps_owed_work_across_a_restart(tmp_path):
    state = tmp_path / "queue.json"
    first = MemoryJobQueue(state)
    await first.start()
    submit = SubmitPrompt(first, default_width=256, default_height=256)
    a = await submit(user_id=1, chat_id=1, prompt="a")
    b = await submit(user_id=2, chat_id=2, prompt="b")
    [taken] = await first.receive_jobs(1, 1)  # in flight when the process stops
    await first.stop()
    second = MemoryJobQueue(state)
    await second.start()
    got = {d.message.job_id for d in await second.receive_jobs(10, 1)}
    assert got == {a.job_id, b.job_id} and taken.message.job_id in got
    assert not state.exists()


async def test_the_lanes_survive_a_restart(tmp_path):
    from domain.models import Lane

    state = tmp_path / "queue.json"
    first = MemoryJobQueue(state)
    await first.start()
    submit = SubmitPrompt(first, default_width=256, default_height=256)
    relaxed = submit.prepare(user_id=1, chat_id=1, prompt="a").model_copy(update={"lane": Lane.RELAXED})
    await first.publish_job(relaxed)
    priority = await submit(user_id=2, chat_id=2, prompt="b")
    await first.stop()
    second = MemoryJobQueue(state)
    await second.start()
    assert await second.backlogs() == {Lane.PRIORITY: 1, Lane.RELAXED: 1}
    got = [d.message for d in await second.receive_jobs(10, 1)]
    assert [(j.job_id, j.lane) for j in got] == [(priority.job_id, Lane.PRIORITY), (relaxed.job_id, Lane.RELAXED)]
