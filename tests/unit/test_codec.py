from __future__ import annotations

import json

import pytest

from domain.codec import UndecodableMessage, decode_event, decode_job, encode_event, encode_job
from domain.models import ErrorCode, Job, JobStatus, Locale, Progress, Quality, Result


def job() -> Job:
    return Job(user_id=1, chat_id=2, prompt="Закат над океаном", negative_prompt="blur", width=512,
               height=384, seed=7, quality=Quality.FAST, locale=Locale.RU, status_message_id=9)


def test_job_round_trip_and_envelope():
    original = job()
    raw = encode_job(original)
    doc = json.loads(raw)
    assert doc["v"] == 1 and doc["type"] == "job"
    assert "Закат" in raw.decode()  # UTF-8, not escaped
    assert decode_job(raw) == original


def test_events_round_trip():
    j = job()
    progress = Progress(job_id=j.job_id, user_id=1, chat_id=2, stage="generating", step=2, total_steps=8)
    failure = Result.failure(j, ErrorCode.STORAGE_UNAVAILABLE)
    assert decode_event(encode_event(progress)) == progress
    decoded = decode_event(encode_event(failure))
    assert decoded == failure
    assert decoded.status == JobStatus.FAILED and decoded.error_code == ErrorCode.STORAGE_UNAVAILABLE


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "envelope"),
        (b'{"v": 2, "type": "job", "data": {}}', "version"),
        (b'{"v": 1, "type": "result", "data": {}}', "unexpected type"),
        (b'{"v": 1, "type": "job", "data": {"user_id": 1}}', "invalid"),
        (b'{"v": 1, "type": "job", "data": null}', "invalid"),
    ],
)
def test_broken_jobs_raise_with_reason(raw, reason):
    with pytest.raises(UndecodableMessage) as info:
        decode_job(raw)
    assert reason in info.value.reason


def test_unknown_fields_are_refused():
    doc = json.loads(encode_job(job()))
    doc["data"]["evil"] = 1
    with pytest.raises(UndecodableMessage, match="evil"):
        decode_job(json.dumps(doc).encode())


def test_event_data_must_be_an_object():
    with pytest.raises(UndecodableMessage):
        decode_event(b'{"v": 1, "type": "progress", "data": 5}')


def test_requests_stream_carries_jobs_and_cancellations():
    from domain.codec import decode_request, encode_cancel
    from domain.models import Cancel

    original = job()
    cancel = Cancel(job_id=original.job_id, user_id=1)
    assert decode_request(encode_job(original)) == original
    assert decode_request(encode_cancel(cancel)) == cancel
    with pytest.raises(UndecodableMessage):
        decode_request(b'{"v": 1, "type": "cancel", "data": {"job_id": 5}}')
