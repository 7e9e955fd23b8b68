"""How messages travel on the queue: versioned JSON envelopes checked against the models' schema.

``{"v": 1, "type": "job" | "cancel" | "progress" | "result", "data": {...}}``. A message of an
unknown version or type, or one that fails validation, raises ``UndecodableMessage`` with the
reason: consumers set it aside (dead letters) and go on.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from domain.errors import UndecodableMessage
from domain.models import Cancel, Event, Job, Progress, Result

VERSION = 1
_events: TypeAdapter[Progress | Result] = TypeAdapter(Event)


# Fields added after the first release of version 1: left out while they hold their default, so a
# process of the previous release (which refuses unknown fields) still reads what a newer one
# writes during a rolling upgrade; they travel only when they say something.
ADDED_FIELDS: dict[type, frozenset[str]] = {
    Job: frozenset({"translate", "aspect", "paid_credit", "lane"}),
    Cancel: frozenset({"lane"}),
    Result: frozenset({"understood", "spoiler", "flags", "generator_kind", "random_translation"}),
    Progress: frozenset({"seconds_per_image"}),
}


def _dump(message: Job | Cancel | Progress | Result) -> dict[str, Any]:
    data = message.model_dump(mode="json")
    fields = type(message).model_fields
    for name in ADDED_FIELDS.get(type(message), ()):
        if getattr(message, name) == fields[name].default:
            data.pop(name, None)
    return data


def _envelope(kind: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, "type": kind, "data": data}, ensure_ascii=False).encode()


def _open(raw: bytes, kinds: tuple[str, ...]) -> tuple[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise UndecodableMessage(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(doc, dict):
        raise UndecodableMessage("not an envelope object")
    if doc.get("v") != VERSION:
        raise UndecodableMessage(f"unsupported version {doc.get('v')!r}")
    if doc.get("type") not in kinds:
        raise UndecodableMessage(f"unexpected type {doc.get('type')!r}")
    return doc["type"], doc.get("data")


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "message"
    return f"invalid {where}: {first.get('msg')}"


def encode_job(job: Job) -> bytes:
    return _envelope("job", _dump(job))


def decode_job(raw: bytes) -> Job:
    _, data = _open(raw, ("job",))
    try:
        return Job.model_validate(data)
    except ValidationError as exc:
        raise UndecodableMessage(_reason(exc)) from None


def encode_cancel(cancel: Cancel) -> bytes:
    return _envelope("cancel", _dump(cancel))


def decode_request(raw: bytes) -> Job | Cancel:
    """What travels on the requests stream: a job, or the cancellation of one."""
    kind, data = _open(raw, ("job", "cancel"))
    model = Job if kind == "job" else Cancel
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UndecodableMessage(_reason(exc)) from None


def encode_event(event: Progress | Result) -> bytes:
    return _envelope(event.kind, _dump(event))


def decode_event(raw: bytes) -> Progress | Result:
    kind, data = _open(raw, ("progress", "result"))
    if not isinstance(data, dict):
        raise UndecodableMessage("data is not an object")
    try:
        return _events.validate_python({**data, "kind": kind})
    except ValidationError as exc:
        raise UndecodableMessage(_reason(exc)) from None
