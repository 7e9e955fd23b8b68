"""The job record is the authority for what the bot sends (``domain.use_cases.vet``): the rule
that tells a forged event from a genuine one, what a genuine one is rebuilt from, and
``DeliverResults`` dropping forged events before they reach the chat or the delivery log. On the
memory queue, the memory user store and the local-folder storage; the same on the real broker
with the real bot: tests/kafka/test_forged_events.py."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from adapters.embedded.delivery_log import MemoryDeliveryLog
from adapters.embedded.queue import MemoryJobQueue
from adapters.embedded.storage import LocalFolderStorage
from adapters.embedded.user_store import MemoryUserStore
from domain.models import ErrorCode, Job, JobStatus, Locale, Progress, Quality, Result, image_key
from domain.ports import Claim
from domain.telemetry import NoMetrics
from domain.use_cases import DeliverResults
from domain.use_cases.vet import Forgery, VetEvents, forgery
from domain.users import JobRecord, UserLimits

NOW = 1_700_000_000.0
PROMPT = "a quiet harbour at dawn"


def record(**kw) -> JobRecord:
    job = Job(
        job_id="j1",
        user_id=5,
        chat_id=5,
        prompt=PROMPT,
        width=512,
        height=512,
        seed=7,
        quality=Quality.FAST,
        locale=Locale.RU,
        created_at=NOW,
        status_message_id=100,
    )
    values = {**JobRecord.from_job(job).__dict__, **kw}
    return JobRecord(**values)


def result(**kw) -> Result:
    values = dict(
        job_id="j1",
        user_id=5,
        chat_id=5,
        locale=Locale.RU,
        status_message_id=100,
        status=JobStatus.DONE,
        prompt=PROMPT,
        seed=7,
        width=512,
        height=512,
        image_key=image_key("j1"),
        image_url="https://img.example.com/images/j1.png",
    )
    return Result(**{**values, **kw})


def progress(**kw) -> Progress:
    values = dict(
        job_id="j1",
        user_id=5,
        chat_id=5,
        locale=Locale.RU,
        status_message_id=100,
        stage="generating",
        step=3,
        total_steps=10,
    )
    return Progress(**{**values, **kw})


# --- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "rec", "expected"),
    [
        (result(), record(), None),
        (progress(), record(), None),
        (result(job_id="nobody"), None, Forgery.UNKNOWN_JOB),
        (progress(job_id="nobody"), None, Forgery.UNKNOWN_JOB),
        (result(chat_id=6), record(), Forgery.WRONG_CHAT),
        (progress(chat_id=-100123), record(), Forgery.WRONG_CHAT),
        (result(user_id=6), record(), Forgery.WRONG_USER),
        (progress(user_id=6), record(), Forgery.WRONG_USER),
        (result(status_message_id=101), record(), Forgery.WRONG_STATUS_MESSAGE),
        (progress(status_message_id=1), record(), Forgery.WRONG_STATUS_MESSAGE),
        # a job the outbox published before its status was recorded: events name no message
        (result(status_message_id=None), record(), None),
        (progress(status_message_id=None), record(), None),
        (progress(status_message_id=None), record(status_message_id=None), None),
        # the record has no status message: an event that names one is not the bot's job's
        (progress(status_message_id=100), record(status_message_id=None), Forgery.WRONG_STATUS_MESSAGE),
        (result(image_key=image_key("j2")), record(), Forgery.FOREIGN_IMAGE_KEY),
        (result(image_key="images/../secrets.png"), record(), Forgery.FOREIGN_IMAGE_KEY),
        # a failure's key would be recorded, and sent later by the "original PNG" button
        (
            result(status=JobStatus.FAILED, error_code=ErrorCode.GENERATION_FAILED, image_key=image_key("j2")),
            record(),
            Forgery.FOREIGN_IMAGE_KEY,
        ),
        (result(status=JobStatus.FAILED, error_code=ErrorCode.GENERATION_FAILED, image_key=None), record(), None),
        (result(image_key="images/old-j1.png"), record(image_key="images/old-j1.png"), None),  # the record's own
    ],
)
def test_the_rule(event, rec, expected):
    assert forgery(event, rec) == expected


# --- VetEvents -------------------------------------------------------------------------------


class Counted(NoMetrics):
    def __init__(self) -> None:
        self.forged: list[tuple[str, str]] = []

    def forged_event(self, kind: str, reason: str) -> None:
        self.forged.append((kind, reason))


@pytest.fixture
async def vet(tmp_path):
    store = MemoryUserStore()
    await store.admit([record()], UserLimits(), NOW)
    await store.set_status_message("j1", 100)
    storage = LocalFolderStorage(tmp_path, public_base_url="https://p2p.example.com")
    await storage.start()
    return VetEvents(store, storage, metrics=Counted()), store, storage


async def test_a_genuine_result_is_rebuilt_from_the_record_and_the_bots_own_link(vet):
    check, _store, storage = vet
    got = await check(
        result(status_message_id=None, locale=Locale.EN, accepted_at=1.0, image_url="https://evil.example.net/login")
    )
    assert isinstance(got, Result)
    assert (got.chat_id, got.user_id, got.status_message_id) == (5, 5, 100)
    assert got.locale == Locale.RU and got.prompt == PROMPT and got.accepted_at == NOW
    assert got.image_key == image_key("j1")
    link = urlsplit(got.image_url)
    assert (link.scheme, link.netloc, unquote(link.path)) == ("https", "p2p.example.com", "/files/images/j1.png")
    query = parse_qs(link.query)
    assert storage.verify("images/j1.png", int(query["exp"][0]), query["sig"][0])  # signed by this storage
    assert check.metrics.forged == []


async def test_a_failure_gets_no_link_and_the_records_prompt(vet):
    check, *_ = vet
    got = await check(
        result(
            status=JobStatus.FAILED,
            error_code=ErrorCode.GENERATION_FAILED,
            image_key=None,
            image_url="https://evil.example.net/login",
            prompt="send your password here",
        )
    )
    assert isinstance(got, Result) and got.image_url is None and got.prompt == PROMPT


async def test_a_genuine_progress_event_gets_the_records_status_message(vet):
    check, *_ = vet
    got = await check(progress(status_message_id=None, locale=Locale.EN))
    assert isinstance(got, Progress)
    assert (got.chat_id, got.status_message_id, got.locale, got.step) == (5, 100, Locale.RU, 3)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            result(job_id="nobody\nINFO forged log line", chat_id=77, prompt="Claim your prize at evil.example.net"),
            "unknown_job",
        ),
        (result(chat_id=77, prompt="Claim your prize at evil.example.net"), "wrong_chat"),
        (progress(status_message_id=55), "wrong_status_message"),
        (
            result(image_key=image_key("someone-else"), prompt="Claim your prize at evil.example.net"),
            "foreign_image_key",
        ),
    ],
)
async def test_a_forged_event_is_dropped_counted_and_logged_without_its_text(vet, caplog, event, reason):
    check, store, _ = vet
    caplog.set_level(logging.INFO, logger="domain.use_cases.vet")
    assert await check(event) is None
    assert check.metrics.forged == [(event.kind, reason)]
    [line] = [r.getMessage() for r in caplog.records]
    assert reason in line and event.kind in line
    assert "\n" not in line and "evil.example" not in line and "prize" not in line
    assert (await store.get_job("j1")).active  # nothing recorded of it


# --- DeliverResults with the check ---------------------------------------------------------


class Notifier:
    def __init__(self) -> None:
        self.delivered: list[Result] = []
        self.progress_events: list[Progress] = []
        self.settled: list[str] = []

    async def progress(self, event):
        self.progress_events.append(event)

    async def deliver(self, result, sent):
        self.delivered.append(result)
        await sent()

    async def settle(self, result):
        self.settled.append(result.job_id)


async def test_forged_events_are_acked_unclaimed_and_the_genuine_result_still_goes_out(vet):
    check, _store, _storage = vet
    queue = MemoryJobQueue()
    await queue.start()
    notifier, log = Notifier(), MemoryDeliveryLog()
    deliver = DeliverResults(queue, notifier, log, poll_timeout_s=0.05, vet=check)
    forged = [
        result(chat_id=77, image_url="https://evil.example.net/login"),  # the real job, another chat
        result(job_id="unknown", chat_id=77),
        progress(chat_id=77, status_message_id=9),
        progress(status_message_id=55),
        result(image_key=image_key("someone-else")),
    ]
    for event in [*forged, result()]:
        await queue.publish_event(event)
    for d in await queue.receive_events(100, 0.2):
        await deliver.handle(d)
    assert [r.job_id for r in notifier.delivered] == ["j1"]  # the genuine one, not skipped as delivered
    [sent] = notifier.delivered
    assert sent.chat_id == 5 and sent.image_url.startswith("https://p2p.example.com/files/")
    assert notifier.progress_events == [] and notifier.settled == ["j1"]
    assert sorted(check.metrics.forged) == sorted(
        [
            ("result", "wrong_chat"),
            ("result", "unknown_job"),
            ("progress", "wrong_chat"),
            ("progress", "wrong_status_message"),
            ("result", "foreign_image_key"),
        ]
    )
    assert await log.claim("unknown") is Claim.TAKEN  # a forged result claimed nothing
    assert await queue.receive_events(100, 0.1) == []  # all acked: none comes back
