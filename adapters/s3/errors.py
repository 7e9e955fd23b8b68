"""What the S3 adapter's parts share about errors: the S3 error code and HTTP status of a
botocore ``ClientError``, the network errors, and the ``StorageError`` they become (its message
holds the operation, bucket, key, S3 error code and HTTP status only: never credentials, URLs or
signatures)."""

from __future__ import annotations

import asyncio

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from domain.errors import StorageError

NETWORK_ERRORS = (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def http_status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def storage_error(op: str, bucket: str, exc: BaseException, key: str | None = None) -> StorageError:
    """The ``StorageError`` for a botocore / network error. Its message holds no credentials:
    only the operation, bucket, key, the S3 error code (or the exception class) and the HTTP
    status."""
    if isinstance(exc, ClientError):
        return StorageError(
            op=op,
            bucket=bucket,
            key=key,
            reason=error_code(exc) or "ClientError",
            status=http_status(exc),
        )
    return StorageError(op=op, bucket=bucket, key=key, reason=type(exc).__name__)
