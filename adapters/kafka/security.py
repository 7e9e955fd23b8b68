"""How the Kafka clients authenticate and encrypt: the options every aiokafka client of the queue
(the producer, each consumer, the admin client, the lag reader) is made with.

Managed Kafka speaks SASL over TLS: cloud.ru's Managed Kafka SCRAM-SHA-512 on port 9094; MSK,
Confluent Cloud and Aiven TLS with SASL (PLAIN or SCRAM). The CA file is for brokers whose
certificates a private CA signed; a client certificate and key are for brokers that ask for one.
The password is kept out of ``repr`` and out of every message this module makes.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown Kafka security protocol {self.protocol!r} (one of {', '.join(PROTOCOLS)})")
        if self.sasl:
            if self.mechanism not in MECHANISMS:
                raise ValueError(f"unknown SASL mechanism {self.mechanism!r} (one of {', '.join(MECHANISMS)})")
            if not self.username or not self.password:
                raise ValueError(f"{self.protocol} needs a SASL username and password")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("a client certificate needs its key, and a key its certificate")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """For logs: the protocol, mechanism and user, never the password."""
        if self.sasl:
            return f"{self.protocol} {self.mechanism} as {self.username!r}"
        return self.protocol

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=self.ca_file or None,
            certfile=self.cert_file or None,
            keyfile=self.key_file or None,
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        if self.sasl:
            options.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return options


class LoginRefused(Exception):
    """The brokers refused this client's login or certificate: a setting is wrong (retrying soon
    cannot help, though the app keeps trying slowly in case the credentials are fixed)."""


async def why_refused(bootstrap_servers: str, security: KafkaSecurity, timeout_s: float = 10.0) -> str | None:
    """After a failed start: when a broker refused the login (SASL) or the TLS handshake
    (certificate), one line saying so, else None (unreachable: an outage, retried as one).
    aiokafka only says "Unable to bootstrap"; this connects once more to find out."""
    if not (security.sasl or security.tls):
        return None
    import asyncio

    from aiokafka.conn import create_conn
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    options = security.client_options()
    for address in (a.strip() for a in bootstrap_servers.split(",") if a.strip()):
        host, _, port = address.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout_s * 1000), **options), timeout_s
            )
        except SaslAuthenticationFailed:
            return (
                f"Kafka at {address} refused the login ({security.describe()}): invalid credentials; "
                "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        except UnsupportedSaslMechanismError:
            return f"Kafka at {address} does not offer SASL {security.mechanism}; check KAFKA_SASL_MECHANISM"
        except ssl.SSLCertVerificationError as exc:
            return (
                f"Kafka at {address}: the broker's certificate is not trusted ({exc.verify_message}); "
                "check KAFKA_SSL_CA_FILE"
            )
        except ssl.SSLError as exc:
            return f"Kafka at {address}: the TLS handshake failed ({exc.reason}); check KAFKA_SECURITY_PROTOCOL"
        except Exception:
            continue
        else:
            conn.close()
    return None


class RefusalFilter:
    """aiokafka logs each refused login or certificate as an error of its own ("Unable connect
    to ...: SaslAuthenticationFailed", "... CERTIFICATE_VERIFY_FAILED"); the queue says it once,
    as one clear line (``why_refused``), so those go."""

    MARKS = ("SaslAuthenticationFailed", "CERTIFICATE_VERIFY_FAILED")

    def filter(self, record: object) -> bool:
        try:
            message = record.getMessage()  # type: ignore[attr-defined]
        except Exception:
            return True
        return not ("Unable connect to" in message and any(m in message for m in self.MARKS))


_FILTER = RefusalFilter()


def quiet_aiokafka_refusals() -> None:
    import logging

    for name in ("aiokafka", "aiokafka.client"):  # a logger's filters see only its own records
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
