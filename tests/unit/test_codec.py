from __future__ import annotations

import json

import pytest

from domain.codec import decode_event, decode_job, decode_request, encode_cancel, encode_event, encode_job
from domain.errors import UndecodableMessage
from domain.models import Cancel, ErrorCode, Job, JobStatus, Locale, Progress, Quality, Result, Stage, Timings
from domain.users import JobRecord


def job() -> Job:
    return Job(
        user_id=1,
        chat_id=2,
        prompt="Закат над океаном",
        negative_prompt="blur",
        width=512,
        height=384,
        seed=7,
        quality=Quality.FAST,
        locale=Locale.RU,
        status_message_id=9,
    )


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
    from domain.models import GeneratorKind, Job, JobStatus, Result

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
    # What made the picture travels once a worker says it (the bot captions a stand-in as such).
    told = result.model_copy(update={"generator_kind": GeneratorKind.PLACEHOLDER, "random_translation": True})
    data = json.loads(encode_event(told))["data"]
    assert data["generator_kind"] == "placeholder" and data["random_translation"] is True
    assert decode_event(encode_event(told)) == told


# Messages as the release before the shared JobRef encoded them (captured from that code): what a
# process of that release puts on the queue during a rolling upgrade, and what it must read back.
OLD_WIRE = {
    "job": (
        '{"v": 1, "type": "job", "data": {"job_id": "a1", "user_id": 1, "chat_id": 2, "prompt": "Закат", '
        '"negative_prompt": "blur", "width": 512, "height": 384, "seed": 7, "quality": "fast", '
        '"locale": "ru", "created_at": 100.0, "attempt": 0, "status_message_id": 9}}'
    ).encode(),
    "job_translate_off": (
        '{"v": 1, "type": "job", "data": {"job_id": "a1", "user_id": 1, "chat_id": 2, "prompt": "Закат", '
        '"negative_prompt": "blur", "width": 512, "height": 384, "seed": 7, "quality": "fast", '
        '"locale": "ru", "created_at": 100.0, "attempt": 0, "status_message_id": 9, "translate": false}}'
    ).encode(),
    "progress": (
        b'{"v": 1, "type": "progress", "data": {"kind": "progress", "job_id": "a1", "user_id": 1, '
        b'"chat_id": 2, "locale": "ru", "status_message_id": 9, "stage": "generating", "step": 2, '
        b'"total_steps": 8, "worker_id": "w", "at": 101.0}}'
    ),
    "failure": (
        '{"v": 1, "type": "result", "data": {"kind": "result", "job_id": "a1", "user_id": 1, '
        '"chat_id": 2, "locale": "ru", "status": "failed", "prompt": "Закат", "seed": 7, "width": 512, '
        '"height": 384, "status_message_id": 9, "image_key": null, "image_url": null, "profile": null, '
        '"profile_reason": null, "timings": {"queue_wait_s": 0.0, "generation_s": 0.0, "upload_s": 0.0, '
        '"total_s": 0.0}, "error_code": "storage_unavailable", "worker_id": "w", "accepted_at": 100.0, '
        '"finished_at": 102.0}}'
    ).encode(),
    "done": (
        '{"v": 1, "type": "result", "data": {"kind": "result", "job_id": "a1", "user_id": 1, '
        '"chat_id": 2, "locale": "ru", "status": "done", "prompt": "Закат", "seed": 7, "width": 512, '
        '"height": 384, "status_message_id": 9, "image_key": "images/a1.png", '
        '"image_url": "http://x/a1", "profile": "fast", "profile_reason": "load", '
        '"timings": {"queue_wait_s": 0.5, "generation_s": 1.0, "upload_s": 0.25, "total_s": 0.0}, '
        '"error_code": null, "worker_id": "w", "spoiler": true, "flags": ["nudity"], '
        '"accepted_at": 100.0, "finished_at": 102.0}}'
    ).encode(),
    "cancel": (b'{"v": 1, "type": "cancel", "data": {"kind": "cancel", "job_id": "a1", "user_id": 1, "at": 103.0}}'),
}


def current_messages() -> dict[str, Job | Progress | Result | Cancel]:
    """The same messages built with this release's constructors."""
    j = Job(
        job_id="a1",
        user_id=1,
        chat_id=2,
        prompt="Закат",
        negative_prompt="blur",
        width=512,
        height=384,
        seed=7,
        quality=Quality.FAST,
        locale=Locale.RU,
        created_at=100.0,
        status_message_id=9,
    )
    return {
        "job": j,
        "job_translate_off": j.model_copy(update={"translate": False}),
        "progress": Progress.of(j, Stage.GENERATING, 2, 8, worker_id="w").model_copy(update={"at": 101.0}),
        "failure": Result.failure(j, ErrorCode.STORAGE_UNAVAILABLE, worker_id="w", finished_at=102.0),
        "done": Result.done(
            j,
            "images/a1.png",
            "http://x/a1",
            512,
            384,
            profile="fast",
            profile_reason="load",
            timings=Timings(queue_wait_s=0.5, generation_s=1.0, upload_s=0.25),
            worker_id="w",
            finished_at=102.0,
            spoiler=True,
            flags=("nudity",),
        ),
        "cancel": Cancel(job_id="a1", user_id=1, at=103.0),
    }


def encode(message: Job | Progress | Result | Cancel) -> bytes:
    if isinstance(message, Job):
        return encode_job(message)
    if isinstance(message, Cancel):
        return encode_cancel(message)
    return encode_event(message)


@pytest.mark.parametrize("name", list(OLD_WIRE))
def test_a_message_of_the_previous_release_still_decodes(name):
    new = current_messages()[name]
    decode = decode_job if isinstance(new, Job) else decode_request if isinstance(new, Cancel) else decode_event
    assert decode(OLD_WIRE[name]) == new


@pytest.mark.parametrize("name", list(OLD_WIRE))
def test_this_release_encodes_the_same_keys_and_values(name):
    """JSON object keys are unordered: the fields of JobRef now come first in ``data``, nothing
    else changed (a reader of the previous release refuses any unknown key)."""
    old, new = json.loads(OLD_WIRE[name]), json.loads(encode(current_messages()[name]))
    assert new["data"].keys() == old["data"].keys()
    assert new == old


def test_job_ref_is_what_every_message_about_a_job_repeats():
    j = current_messages()["job"]
    others = (current_messages()["progress"], Result.failure(j, ErrorCode.CANCELLED), Result.done(j, "k", "u", 1, 1))
    for message in others:
        assert (
            message.ref_fields()
            == j.ref_fields()
            == {
                "job_id": "a1",
                "user_id": 1,
                "chat_id": 2,
                "locale": Locale.RU,
                "status_message_id": 9,
            }
        )
    assert JobRecord.from_job(j).job().ref_fields() == j.ref_fields()


def test_stages_travel_as_their_strings():
    progress = current_messages()["progress"]
    assert json.loads(encode_event(progress))["data"]["stage"] == "generating"
    assert decode_event(encode_event(progress)).stage is Stage.GENERATING
    with pytest.raises(UndecodableMessage, match="stage"):
        decode_event(OLD_WIRE["progress"].replace(b'"generating"', b'"queued"'))
