"""Logging of the process: text or JSON lines, with every secret scrubbed from every record."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable


class SecretRedactor(logging.Filter):
    """Replaces each secret (the bot token above all: aiogram's URLs contain it) with a marker,
    in the message and in any traceback attached to the record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        values = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.pattern is None:
            return True
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            record.exc_info = None
            record.exc_text = None
        record.msg = self.pattern.sub("<redacted>", message)
        record.args = ()
        return True


def setup_logging(level: str, secrets: Iterable[str] = (), fmt: str = "text") -> None:
    """Text or JSON lines (with ``job_id`` where a record has one). Prompts are user data: the
    service logs them at debug level only."""
    handler = logging.StreamHandler()
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretRedactor(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # botocore logs request headers (signatures) at debug level: never below INFO.
    for noisy in ("aiokafka", "botocore", "aiobotocore", "urllib3", "aiogram.event"):
        floor = logging.INFO if noisy != "aiogram.event" else logging.WARNING
        logging.getLogger(noisy).setLevel(max(floor, root.level))
