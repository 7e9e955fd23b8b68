"""Kafka over TLS with SASL SCRAM-SHA-512 (what cloud.ru's Managed Kafka speaks on 9094), on the
real broker's SASL_SSL listener with a throwaway CA (tests/fixtures/kafka.py ``kafka_sasl_ssl``).
The queue contract suite runs there too (tests/contract, ``kafka-sasl-ssl``). Here: a wrong
password or an untrusted certificate is one clear error line and readiness false, in the queue and
in the real app process, and no password reaches a log. The settings themselves (what the
composition root makes of them, the password kept out of reprs and errors): test_security_settings.py."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.request

import pytest
from aiokafka.errors import KafkaError

from adapters.kafka.security import LoginRefused
from domain.models import Job
from tests.faults.rig import Proc
from tests.fixtures.kafka import KafkaQueueHarness

pytestmark = pytest.mark.kafka
WRONG = "wrong-password-5d1e9"


def job(n: int) -> Job:
    return Job(job_id=f"sec-{n}", user_id=1, chat_id=1, prompt="a lighthouse", width=256, height=256, seed=n)


async def test_jobs_and_events_travel_over_sasl_ssl(kafka_sasl_ssl, caplog):
    caplog.set_level(logging.DEBUG)
    harness = KafkaQueueHarness(kafka_sasl_ssl.bootstrap, security=kafka_sasl_ssl.security())
    try:
        queue = await harness.new_queue()
        assert queue.is_ready() and queue.client_options["security_protocol"] == "SASL_SSL"
        await queue.publish_job(job(1))
        [delivery] = await queue.receive_jobs(1, 20)
        assert delivery.message.job_id == "sec-1"
        await delivery.ack()
        assert "SASL_SSL SCRAM-SHA-512 as 'p2p-app'" in caplog.text  # the start line says how
    finally:
        await harness.close()
    assert kafka_sasl_ssl.password not in caplog.text


async def test_the_sasl_listener_refuses_a_plaintext_client(kafka_sasl_ssl):
    harness = KafkaQueueHarness(kafka_sasl_ssl.bootstrap, start_timeout_s=3)
    try:
        with pytest.raises(KafkaError):  # aiokafka: unable to bootstrap
            await harness.new_queue()
    finally:
        await harness.close()


def error_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_wrong_password_is_one_clear_error_line_and_not_ready(kafka_sasl_ssl, caplog):
    caplog.set_level(logging.DEBUG)
    harness = KafkaQueueHarness(
        kafka_sasl_ssl.bootstrap, security=kafka_sasl_ssl.security(password=WRONG), start_timeout_s=20
    )
    queue = harness.make_queue()
    try:
        started = time.monotonic()
        with pytest.raises(LoginRefused):
            await queue.start()
        assert time.monotonic() - started < 15  # told at once, not after the start timeout
        assert not queue.is_ready()
        with pytest.raises(LoginRefused):
            await queue.start()  # the app tries again later: no second line
        [line] = error_lines(caplog)
        assert line == (
            f"Kafka at {kafka_sasl_ssl.bootstrap} refused the login (SASL_SSL SCRAM-SHA-512 as 'p2p-app'): "
            "invalid credentials; check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    finally:
        await harness.close()
    assert WRONG not in caplog.text and kafka_sasl_ssl.password not in caplog.text


async def test_an_untrusted_certificate_is_one_clear_error_line(kafka_sasl_ssl, caplog):
    caplog.set_level(logging.DEBUG)
    harness = KafkaQueueHarness(
        kafka_sasl_ssl.bootstrap, security=kafka_sasl_ssl.security(ca_file=""), start_timeout_s=20
    )
    queue = harness.make_queue()
    try:
        with pytest.raises(LoginRefused):
            await queue.start()
        [line] = error_lines(caplog)
        assert "is not trusted" in line and "KAFKA_SSL_CA_FILE" in line
    finally:
        await harness.close()
    assert kafka_sasl_ssl.password not in caplog.text


def readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def http_port(proc: Proc, timeout: float = 60) -> int:
    await proc.wait_for_line("HTTP endpoint on", timeout)
    line = next(text for text in proc.lines if "HTTP endpoint on" in text)
    return int(re.search(r":(\d+)\s*$", line).group(1))


@pytest.mark.slow
async def test_the_app_with_a_wrong_password_is_unready_with_one_error_line_then_works(kafka_sasl_ssl, tmp_path):
    """The real app process (worker role), configured by the settings alone."""
    secure = kafka_sasl_ssl
    base = {
        "QUEUE_BACKEND": "kafka",
        "KAFKA_BOOTSTRAP_SERVERS": secure.bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": secure.username,
        "KAFKA_SSL_CA_FILE": secure.ca_file,
        "KAFKA_REQUESTS_TOPIC": "sec-app.requests",
        "KAFKA_RESULTS_TOPIC": "sec-app.results",
        "KAFKA_DEAD_LETTER_TOPIC": "sec-app.dead",
        "KAFKA_PARTITIONS": "2",
        "GENERATOR": "fake",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "METRICS_ENABLED": "false",
        "LOCAL_STORAGE_DIR": str(tmp_path / "images"),
        "PYTHONUNBUFFERED": "1",
        "PATH": "/usr/bin:/bin",
        "SHUTDOWN_GRACE_S": "5",
    }
    password_file = tmp_path / "kafka-password"
    wrong = Proc("wrong", "worker", {**base, "KAFKA_SASL_PASSWORD": WRONG}, tmp_path / "wrong.log")
    await wrong.start()
    try:
        port = await http_port(wrong)
        await asyncio.sleep(6)  # the first attempt and a retry or two
        status, body = readyz(port)
        assert status == 503 and body["checks"]["queue"] is False
    finally:
        await wrong.terminate(30)
    errors = [line for line in wrong.lines if " ERROR " in line]
    assert len(errors) == 1 and "refused the login" in errors[0], wrong.lines
    assert not any(WRONG in line for line in wrong.lines)

    right = Proc("right", "worker", {**base, "KAFKA_SASL_PASSWORD": secure.password}, tmp_path / "right.log")
    await right.start()
    try:
        await right.wait_ready(60)
        status, body = readyz(await http_port(right))
        assert status == 200 and body["checks"]["queue"] is True
    finally:
        await right.terminate(30)
    assert not any(secure.password in line for line in right.lines)
    assert not [line for line in right.lines if " ERROR " in line]
    del password_file
