"""Kafka security settings: what the composition root makes of them, and that the password stays
out of reprs, validation errors and logs. The real broker's SASL_SSL listener: tests/kafka/test_sasl_ssl_listener.py."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from adapters.kafka.security import KafkaSecurity
from app import secrets_of
from config.factories import kafka_queue
from config.settings import Settings

SECRET = "kafka-canary-0d9b3f"


def settings(**values) -> Settings:
    return Settings(_env_file=None, queue_backend="kafka", **values)


def test_plaintext_by_default():
    queue = kafka_queue(settings())
    assert queue.client_options == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_reaches_every_client_option():
    queue = kafka_queue(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="p2p",
            kafka_sasl_password=SECRET,
        )
    )
    options = queue.client_options
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "p2p" and options["sasl_plain_password"] == SECRET
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED and options["ssl_context"].check_hostname
    assert SECRET not in repr(queue.security) and queue.security.describe() == "SASL_SSL SCRAM-SHA-512 as 'p2p'"


def test_sasl_plaintext_has_no_tls_and_ssl_has_no_sasl():
    plain = KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", SECRET).client_options()
    assert "ssl_context" not in plain and plain["sasl_mechanism"] == "PLAIN"
    tls = KafkaSecurity("SSL").client_options()
    assert "sasl_mechanism" not in tls and isinstance(tls["ssl_context"], ssl.SSLContext)


def test_a_missing_ca_file_is_refused_at_start_with_its_name(tmp_path):
    with pytest.raises(FileNotFoundError):
        KafkaSecurity("SSL", ca_file=str(tmp_path / "nope.pem")).client_options()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": SECRET}, "needs KAFKA_SASL_USERNAME"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"}, "needs KAFKA_SASL_USERNAME"),
        ({"kafka_ssl_cert_file": "c.pem", "kafka_sasl_password": SECRET}, "go together"),
        ({"kafka_security_protocol": "TLS", "kafka_sasl_password": SECRET}, "kafka_security_protocol"),
        ({"kafka_sasl_mechanism": "GSSAPI", "kafka_sasl_password": SECRET}, "kafka_sasl_mechanism"),
    ],
)
def test_incomplete_settings_are_refused_without_echoing_the_password(values, message):
    with pytest.raises(ValidationError) as err:
        settings(**values)
    assert message in str(err.value) and SECRET not in str(err.value)


def test_the_password_is_a_secret_the_logs_scrub():
    s = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password=SECRET)
    assert SECRET in secrets_of(s) and SECRET not in repr(s)
