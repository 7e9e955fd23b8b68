from __future__ import annotations

import io
import json
import logging

from config.logging import SecretRedactor, setup_logging

TOKEN = "123456:AAH-secret-token-value"


def capture(fmt: str = "text") -> tuple[io.StringIO, logging.Logger]:
    setup_logging("INFO", [TOKEN, "s3-secret-key-xyz", ""], fmt)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    return stream, logging.getLogger("test.redaction")


def test_secrets_are_scrubbed_from_messages_and_tracebacks():
    stream, log = capture()
    log.info("calling https://api.telegram.org/bot%s/sendPhoto", TOKEN)
    try:
        raise RuntimeError(f"connect failed for /bot{TOKEN}/getUpdates with s3-secret-key-xyz")
    except RuntimeError:
        log.exception("request failed")
    text = stream.getvalue()
    assert TOKEN not in text and "s3-secret-key-xyz" not in text
    assert text.count("<redacted>") >= 3
    assert "RuntimeError" in text  # the traceback itself is kept


def test_json_lines_carry_the_job_id():
    stream, log = capture("json")
    log.info("job done", extra={"job_id": "abc123"})
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["job_id"] == "abc123" and line["level"] == "INFO" and line["message"] == "job done"


def test_short_or_empty_secrets_do_not_scrub_everything():
    redactor = SecretRedactor(["", "ab"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "abc", (), None)
    assert redactor.filter(record) and record.getMessage() == "abc"
