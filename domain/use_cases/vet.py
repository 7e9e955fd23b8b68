"""The job record is the authority for what the bot sends (bot side).

Anyone who can write to the results stream can put a progress event or a result on it: the
broker's network or credentials are not a trust boundary (in compose the broker shares a
network with the internet-facing proxy; in Helm the bot and the workers share one user). So
before an event does anything, ``VetEvents`` checks it against the job the bot recorded when it
accepted the prompt, and what the bot then shows comes from that record, never from the event:
the chat, the user, the live status message, the prompt, the language, the acceptance time, and
the picture's link, which the bot signs itself (``Storage.link``) for the job's own image key.

An event that does not match its record is dropped: counted (``Metrics.forged_event``), logged
(without any of its text), and acked, so it is neither retried nor claimed in the delivery log
(a forged result claiming a real job must not mark that job delivered, or the genuine result
that follows would be skipped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

from domain.models import Event, JobStatus, Progress, Result, image_key
from domain.ports import Metrics, Storage, UserStore
from domain.telemetry import NoMetrics
from domain.users import JobRecord

log = logging.getLogger(__name__)


class Forgery(StrEnum):
    """Why an event was dropped (the ``reason`` of the ``p2p_forged_events_total`` metric)."""

    UNKNOWN_JOB = "unknown_job"  # no record of the job in the user store
    WRONG_CHAT = "wrong_chat"
    WRONG_USER = "wrong_user"
    WRONG_STATUS_MESSAGE = "wrong_status_message"
    FOREIGN_IMAGE_KEY = "foreign_image_key"  # a result naming a picture that is not its job's


def forgery(event: Progress | Result, record: JobRecord | None) -> Forgery | None:
    """What is wrong with ``event`` measured against its job's ``record``; None: it matches.

    The status message: every event of a job carries the message id the job was published with.
    ``AdmitJobs`` records the status message before it publishes the job with it, and the outbox
    publishes the record as it is, so a genuine event names either the recorded message or none
    (a job the outbox published before its status was recorded; the record's message is used).
    An event naming a message while the record has none, or another one, is forged.

    The image key: a job's picture is stored under ``image_key(job_id)``; the record's own key
    (set by an earlier delivery of the same result) is accepted too. Any other key, on a result
    of any status (a failure's key would be recorded and later sent by the "original PNG"
    button), is another job's picture."""
    if record is None:
        return Forgery.UNKNOWN_JOB
    if event.chat_id != record.chat_id:
        return Forgery.WRONG_CHAT
    if event.user_id != record.user_id:
        return Forgery.WRONG_USER
    if event.status_message_id is not None and event.status_message_id != record.status_message_id:
        return Forgery.WRONG_STATUS_MESSAGE
    own_keys = (image_key(record.job_id), record.image_key)
    if isinstance(event, Result) and event.image_key is not None and event.image_key not in own_keys:
        return Forgery.FOREIGN_IMAGE_KEY
    return None


@dataclass
class VetEvents:
    """Checks each event against its job's record (``forgery``); returns the event rebuilt from
    the record, or None when it is dropped as forged (counted and logged here)."""

    store: UserStore
    storage: Storage
    metrics: Metrics = field(default_factory=NoMetrics)

    async def __call__(self, event: Event) -> Event | None:
        """Raises what the store or the storage raise (the event is then handled again later)."""
        record = await self.store.get_job(event.job_id)
        reason = forgery(event, record)
        if reason is not None:
            self.metrics.forged_event(event.kind, reason.value)
            # Only what identifies the event: none of its text (a caption, a prompt, a link),
            # and the job id cut short and quoted (it is the sender's, and could be anything).
            log.warning(
                "%s event dropped: %s (job %r, chat %s)", event.kind, reason.value, event.job_id[:64], event.chat_id
            )
            return None
        assert record is not None
        return await self.rebuilt(event, record)

    async def rebuilt(self, event: Event, record: JobRecord) -> Event:
        """The event with everything the bot shows taken from the record. Kept from the event:
        what only the worker knows (stage and steps; status, size, seed, timings, profile, how
        the prompt was understood, the safety flags)."""
        ref = {
            "user_id": record.user_id,
            "chat_id": record.chat_id,
            "locale": record.locale,
            "status_message_id": record.status_message_id,
        }
        if isinstance(event, Progress):
            return event.model_copy(update=ref)
        link = None
        if event.status == JobStatus.DONE and event.image_key:
            link = await self.storage.link(event.image_key)  # the bot's own signature
        return event.model_copy(
            update={**ref, "prompt": record.prompt, "accepted_at": record.created_at, "image_url": link}
        )
