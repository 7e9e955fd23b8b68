from __future__ import annotations

import json

import pytest

from domain.codec import decode_event, decode_job, encode_event, encode_job
from domain.errors import UndecodableMessage
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


def test_fields_added_in_this_release_travel_only_when_they_say_something():
    """A rolling upgrade: a process of the previous release refuses unknown fields, so fields it
    does not know are left out while they hold their default (and decode to it)."""
    import json

    from domain.codec import ADDED_FIELDS, decode_event, decode_job, encode_event, encode_job
    from domain.models import Job, JobStatus, Result

    job = Job(user_id=1, chat_id=1, prompt="a fox", width=512, height=512, seed=1)
    data = json.loads(encode_job(job))["data"]
    assert not ADDED_FIELDS[Job] & data.keys()
    assert decode_job(encode_job(job)) == job
    off = job.model_copy(update={"translate": False})
    assert json.loads(encode_job(off))["data"]["translate"] is False
    assert decode_job(encode_job(off)).translate is False
    result = Result(job_id="j", user_id=1, chat_id=1, status=JobStatus.DONE)
    assert not ADDED_FIELDS[Result] & json.loads(encode_event(result))["data"].keys()
    assert decode_event(encode_event(result)) == result
