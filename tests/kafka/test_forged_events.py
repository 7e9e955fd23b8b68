"""Someone with access to the broker writes progress events and results straight onto the results
topic, as a worker would: the bot (the real service, role all, on the real broker, talking to the
strict fake Bot API) checks each against the job it recorded and sends and edits nothing for the
forged ones, and counts them (``p2p_forged_events_total``), while a genuine result in the same
run is delivered. The rule itself: tests/use_cases/test_forged_events.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

import app
from config.bootstrap import Components
from config.settings import Settings
from domain.codec import encode_event
from domain.models import JobStatus, Progress, Result, image_key
from tests.fakes.telegram import Call, FakeBotAPI
from tests.kafka.pipeline import eventually
from tests.telegram.helpers import Chat, HeldGenerator

A, B, STRANGER = 301, 302, 303  # two users of the bot, and a chat that never talked to it
BAIT = "Your account is locked: log in at evil.example.net"
EVIL_URL = "https://evil.example.net/login"
EDITS = ("editMessageText", "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup")
SENDS = ("sendPhoto", "sendDocument", "sendMessage", "sendMediaGroup")


@pytest.fixture
async def service(telegram: FakeBotAPI, kafka_bootstrap: str, tmp_path) -> AsyncIterator[tuple[Components, Any]]:
    """The real ``app.serve`` (role all: the bot and a worker in one process) on Kafka, with a
    generator that holds prompts about snails; the results topic, for the attacker."""
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        _env_file=None,
        telegram_bot_token=telegram.token,
        telegram_api_url=telegram.base_url,
        http_host="127.0.0.1",
        http_port=0,
        local_storage_dir=tmp_path / "images",
        sqlite_path=tmp_path / "p2p.sqlite3",
        default_width=512,
        default_height=384,
        status_edit_interval_s=0.3,
        send_backoff_s=0.1,
        queue_backend="kafka",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_requests_topic=f"forged-{run}.requests",
        kafka_results_topic=f"forged-{run}.results",
        kafka_dead_letter_topic=f"forged-{run}.dead",
        kafka_worker_group=f"forged-{run}-workers",
        kafka_bot_group=f"forged-{run}-bots",
        kafka_partitions=2,
    )
    generator = HeldGenerator(marker="snail")
    parts = Components(settings, role="all", generator=generator)
    stop = asyncio.Event()
    task = asyncio.create_task(app.serve(parts, stop))
    try:
        await telegram.wait_for(lambda c: c.method == "deleteWebhook", timeout=30)
        await telegram.wait_polling()
        yield parts, generator
    finally:
        generator.release()
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


def forged_counts(parts: Components) -> dict[tuple[str, str], float]:
    text, _ = parts.metrics.prometheus()  # type: ignore[attr-defined]  # OpenTelemetry's, as /metrics serves
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == "p2p_forged_events_total":
                counts[(sample.labels["kind"], sample.labels["reason"])] = sample.value
    return counts


def to_chat(calls: list[Call], chat_id: int) -> list[Call]:
    return [c for c in calls if c.chat_id == chat_id]


async def test_forged_events_on_the_broker_send_and_edit_nothing(telegram: FakeBotAPI, service, kafka_bootstrap):
    parts, generator = service
    store = parts.telegram.store
    a, b = Chat(telegram, A), Chat(telegram, B)

    # A's picture is done; B's job is running (held by the generator), its status live.
    a.send("a lighthouse at dusk")
    [a_photo] = await a.photo(timeout=60)
    [a_job] = await store.history(A, 1)
    b.send("a snail on a leaf")
    await asyncio.wait_for(generator.holding.wait(), 60)
    [b_job] = await store.active_jobs(B)
    b_status = b_job.status_message_id
    assert b_status is not None
    await b.wait(lambda c: c.method == "editMessageText" and "%" in c.text, timeout=20)  # genuine progress shows
    assert (await store.get_job(b_job.job_id)).state.value == "running"

    # The attacker, with a producer of their own on the results topic.
    a_status = a_job.status_message_id
    a_photo_id = int(a_photo.params["_message_id"])
    b_ref = dict(job_id=b_job.job_id, user_id=B, chat_id=B, status_message_id=b_status)
    done = dict(status=JobStatus.DONE, prompt=BAIT, width=512, height=384, image_url=EVIL_URL)
    step = dict(stage="generating", step=7, total_steps=10)  # "70%": no genuine report says so
    forged: list[Progress | Result] = [
        # a job the bot never had, for a chat that never talked to it, with A's picture
        Result(job_id=uuid.uuid4().hex, user_id=STRANGER, chat_id=STRANGER, image_key=image_key(a_job.job_id), **done),
        # B's job, sent elsewhere: to a stranger, and to A (over A's own status message)
        Result(**{**b_ref, "chat_id": STRANGER}, image_key=image_key(b_job.job_id), **done),
        Result(**{**b_ref, "chat_id": A, "status_message_id": a_status}, image_key=image_key(b_job.job_id), **done),
        # B's job as another user's
        Result(**{**b_ref, "user_id": STRANGER}, image_key=image_key(b_job.job_id), **done),
        # B's job with A's picture
        Result(**b_ref, image_key=image_key(a_job.job_id), **done),
        # B's job, over a message that is not its status
        Result(**{**b_ref, "status_message_id": a_photo_id}, **{**done, "status": JobStatus.FAILED}),
        # progress: of no job, over A's picture; of B's job in A's chat; on a foreign message; as another user
        Progress(job_id=uuid.uuid4().hex, user_id=A, chat_id=A, status_message_id=a_photo_id, **step),
        Progress(**{**b_ref, "chat_id": A, "status_message_id": a_photo_id}, **step),
        Progress(**{**b_ref, "status_message_id": a_photo_id}, **step),
        Progress(**{**b_ref, "user_id": STRANGER}, **step),
    ]
    mark = len(telegram.calls)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for event in forged:
            topic = parts.settings.kafka_results_topic
            await producer.send_and_wait(topic, encode_event(event), key=str(event.chat_id).encode())
    finally:
        await producer.stop()

    expected = {
        ("result", "unknown_job"): 1,
        ("result", "wrong_chat"): 2,
        ("result", "wrong_user"): 1,
        ("result", "foreign_image_key"): 1,
        ("result", "wrong_status_message"): 1,
        ("progress", "unknown_job"): 1,
        ("progress", "wrong_chat"): 1,
        ("progress", "wrong_status_message"): 1,
        ("progress", "wrong_user"): 1,
    }
    await eventually(lambda: forged_counts(parts) == expected, 30, f"the forged events counted as {expected}")
    await asyncio.sleep(1.0)  # anything they would have set off has had time to reach the Bot API
    after = telegram.calls[mark:]
    assert to_chat(after, STRANGER) == []
    assert to_chat(after, A) == []  # no picture, no edit of A's status or picture
    b_calls = to_chat(after, B)
    assert [c for c in b_calls if c.method in SENDS] == []
    assert [c for c in b_calls if c.method in EDITS and int(c.params["message_id"]) != b_status] == []
    assert not any("70%" in c.text or "evil.example" in c.text for c in after)
    assert (await store.get_job(b_job.job_id)).active  # B's job is not finished by a forged result

    # The genuine result in the same run goes out: B's own picture, B's prompt, no foreign link.
    generator.release()
    [b_photo] = await b.photo(timeout=60)
    assert "a snail on a leaf" in b_photo.text and "evil.example" not in b_photo.text
    assert b_photo.files["photo"] == (parts.settings.local_storage_dir / image_key(b_job.job_id)).read_bytes()
    assert b_photo.files["photo"] != a_photo.files["photo"]
    assert not any(button.get("url") == EVIL_URL for button in b_photo.buttons())
    await asyncio.sleep(0.5)
    assert len([c for c in telegram.calls if c.method in ("sendPhoto", "sendDocument") and c.ok]) == 2  # A's, B's
    assert to_chat(telegram.calls, STRANGER) == []
    assert forged_counts(parts) == expected  # the genuine events were not counted
