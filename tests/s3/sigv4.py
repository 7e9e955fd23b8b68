"""An independent check of SigV4 presigned S3 URLs (query-string auth), written from AWS's
specification: moto accepts any ``Signature=``, so the tests check the links' signatures and
expiry themselves, as S3 would when the user opens the link."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def check_presigned_url(url: str, secret_access_key: str, *, host: str | None = None, now: float | None = None) -> str:
    """``"valid"``, ``"expired"`` or ``"bad signature"`` for a GET of ``url`` arriving with Host
    ``host`` (default: the URL's own host)."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(params)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256", url
    signed_headers = query["X-Amz-SignedHeaders"]
    assert signed_headers == "host", signed_headers
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params) if k != "X-Amz-Signature"
    )
    canonical_request = "\n".join(
        [
            "GET",
            parts.path,  # S3 does not normalise or double-encode the path
            canonical_query,
            f"host:{host or parts.netloc}\n",
            signed_headers,
            "UNSIGNED-PAYLOAD",
        ]
    )
    _access_key, scope = query["X-Amz-Credential"].split("/", 1)
    date, region, service, terminator = scope.split("/")
    amz_date = query["X-Amz-Date"]
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    for part in (region, service, terminator):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, query["X-Amz-Signature"]):
        return "bad signature"
    deadline = _signed_at(amz_date) + int(query["X-Amz-Expires"])
    if (time.time() if now is None else now) > deadline:
        return "expired"
    return "valid"


def expires_at(url: str) -> float:
    query = dict(parse_qsl(urlsplit(url).query))
    return _signed_at(query["X-Amz-Date"]) + int(query["X-Amz-Expires"])


def _signed_at(amz_date: str) -> float:
    return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
