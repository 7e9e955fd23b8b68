"""Job ids made from a message (``domain.models.job_id_for``) are an HMAC keyed with the service's
secret: the same message gives the same id (a message handed over twice makes one job), but
nobody without the secret can compute another user's job id from their chat and message ids.
The secret is JOB_ID_SECRET or, by default, derived from the bot token (``factories.job_id_secret``),
so bot hosts that share the token agree."""

from __future__ import annotations

import re
import uuid

from adapters.embedded.queue import MemoryJobQueue
from config import factories
from config.settings import Settings
from domain.models import Locale, Quality, job_id_for
from domain.use_cases import SubmitPrompt
from domain.users import JobRecord

TOKEN = "123456:AAE-secret-token-of-the-bot"
# The namespace of the former ids (uuid5 of "chat_id:message_id"), written in the source before.
OLD_NAMESPACE = uuid.UUID("6f1c2b0e-3d5a-4c39-9a59-2a8d8e0f7b11")


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_ids_are_stable_for_one_secret_and_origin_and_differ_between_secrets():
    a = job_id_for(b"secret one", 42, 7)
    assert a == job_id_for(b"secret one", 42, 7)  # the same message again: the same job
    assert re.fullmatch(r"[0-9a-f]{32}", a)  # a uuid's length: callback data fits 64 bytes
    assert job_id_for(b"secret two", 42, 7) != a
    assert job_id_for(b"secret one", 42, 8) != a
    assert job_id_for(b"secret one", 43, 7) != a


def test_ids_are_not_the_old_computable_uuid5():
    for origin in ((42, 7), (-100123, 1), (1, 1)):
        old = uuid.uuid5(OLD_NAMESPACE, ":".join(map(str, origin))).hex
        assert job_id_for(factories.job_id_secret(settings(telegram_bot_token=TOKEN)), *origin) != old


def test_the_default_secret_comes_from_the_token_and_job_id_secret_overrides_it():
    derived = factories.job_id_secret(settings(telegram_bot_token=TOKEN))
    assert derived == factories.job_id_secret(settings(telegram_bot_token=TOKEN))  # another host, same token
    assert derived != factories.job_id_secret(settings(telegram_bot_token="654321:another-token"))
    assert TOKEN.encode() not in derived and len(derived) == 32  # a digest, not the token itself
    given = factories.job_id_secret(settings(telegram_bot_token=TOKEN, job_id_secret="a-long-random-secret"))
    assert given == b"a-long-random-secret" != derived


def test_the_use_case_makes_ids_with_its_secret_and_never_shows_it():
    queue = MemoryJobQueue()
    first = SubmitPrompt(queue, job_id_secret=b"host secret")
    second = SubmitPrompt(queue, job_id_secret=b"host secret")  # another bot host, same secret
    assert first.job_id_for(42, 7) == second.job_id_for(42, 7) == job_id_for(b"host secret", 42, 7)
    assert SubmitPrompt(queue, job_id_secret=b"other").job_id_for(42, 7) != first.job_id_for(42, 7)
    assert "host secret" not in repr(first)
    # without one, a random secret per process: still nothing computable from outside
    assert SubmitPrompt(queue).job_id_for(42, 7) != SubmitPrompt(queue).job_id_for(42, 7)
    job = first.prepare(user_id=42, chat_id=42, prompt="a fox", job_id=first.job_id_for(42, 7))
    assert job.job_id == job_id_for(b"host secret", 42, 7)


def test_the_secret_setting_is_not_shown():
    s = settings(telegram_bot_token=TOKEN, job_id_secret="a-long-random-secret")
    assert "a-long-random-secret" not in repr(s) and "a-long-random-secret" not in str(s.model_dump())


def test_a_record_is_reachable_by_its_owner_and_by_its_group_only():
    def record(user_id: int, chat_id: int) -> JobRecord:
        return JobRecord("j", user_id, chat_id, "a fox", "", 512, 512, 1, Quality.AUTO, Locale.EN, 0.0)

    private = record(1, 1)
    assert private.reachable_by(1, 1) and private.reachable_by(1, None) and private.reachable_by(1, -5)
    assert not private.reachable_by(2, 2) and not private.reachable_by(2, None) and not private.reachable_by(2, -5)
    group = record(1, -5)
    assert group.reachable_by(2, -5)  # a member of the group, under a message in that group
    assert not group.reachable_by(2, 2) and not group.reachable_by(2, -6) and not group.reachable_by(2, None)
    assert group.owned_by(1) and not group.owned_by(2)
