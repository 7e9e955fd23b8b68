"""The new Result fields (spoiler, flags) travel only when used, so a bot of the previous release,
whose models refuse unknown fields, still reads every result that has no spoiler."""

from __future__ import annotations

import json

from domain.codec import decode_event, encode_event
from domain.models import JobStatus, Result


def result(**extra) -> Result:
    return Result(job_id="j1", user_id=1, chat_id=1, status=JobStatus.DONE, image_key="images/j1.png", **extra)


def test_a_clean_result_is_encoded_as_before():
    clean = result()
    raw = encode_event(clean)
    data = json.loads(raw)["data"]
    assert "spoiler" not in data and "flags" not in data
    assert decode_event(raw) == clean


def test_a_flagged_result_round_trips():
    flagged = result(spoiler=True, flags=("FEMALE_BREAST_EXPOSED",))
    back = decode_event(encode_event(flagged))
    assert back == flagged and back.spoiler and back.flags == ("FEMALE_BREAST_EXPOSED",)
