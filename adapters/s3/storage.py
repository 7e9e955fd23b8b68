"""S3-compatible object storage through aioboto3: the real adapter of the ``Storage`` port.

- One aioboto3 session and one long-lived client per process, opened in ``start()`` and closed in
  ``stop()`` (a client per call would pay a new connection pool and credential lookup each time).
- botocore retries in ``standard`` mode, with connect and read timeouts; the worker adds its own
  attempts with backoff on top (``ProcessJobs.storage_attempts``) and then fails the job honestly.
- The bucket is created if missing and stays private, and images expire after ``expire_days``
  days: ``bucket.py`` (``BucketSetup``), called once by ``start``.
- Users get presigned GET links that expire, signed for the public endpoint (see ``start``).
- Errors of the server or the network become ``StorageError`` whose message holds the operation,
  bucket, key, S3 error code and HTTP status only: never credentials, URLs or signatures.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from adapters.s3.bucket import BucketSetup
from adapters.s3.errors import NETWORK_ERRORS, error_code, http_status, storage_error
from domain.models import StoredImage

log = logging.getLogger(__name__)

MAX_LINK_TTL_S = 7 * 24 * 3600
# A link is a bearer token to the picture: a day is enough to open or save it, and a link that
# leaks (a forwarded message, a proxy log) stops working the next day.
DEFAULT_LINK_TTL_S = 24 * 3600
"""SigV4 presigned URLs are valid for at most seven days."""

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _for_log(url: str | None) -> str:
    """An endpoint URL for the logs, without any user:password part."""
    if not url:
        return "aws"
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _encode_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """S3 user metadata travels in HTTP headers (``x-amz-meta-*``): keys are lower-cased by the
    server and values must be printable ASCII. Other values are stored percent-encoded (UTF-8)."""
    out: dict[str, str] = {}
    for name, value in metadata.items():
        value = str(value)
        if not (value.isascii() and value.isprintable()):
            value = quote(value, safe="")
        out[name.lower()] = value
    return out


class S3Storage:
    """The ``Storage`` port on an S3-compatible server (AWS S3, MinIO, moto)."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        link_ttl_s: int = DEFAULT_LINK_TTL_S,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        max_attempts: int = 3,
        expire_days: int = 0,
        addressing_style: str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if not 1 <= link_ttl_s <= MAX_LINK_TTL_S:
            raise ValueError(f"link_ttl_s must be between 1 and {MAX_LINK_TTL_S} (SigV4 limit)")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if expire_days < 0:
            raise ValueError("expire_days must be 0 (keep) or more")
        self.bucket = bucket
        # Settings use "" for "not set": treat it as None (AWS's own endpoint).
        self.endpoint_url = (endpoint_url or "").rstrip("/") or None
        self.public_endpoint_url = (public_endpoint_url or "").rstrip("/") or self.endpoint_url
        self.region = region or "us-east-1"
        self.link_ttl_s = link_ttl_s
        self.expire_days = expire_days
        # None: the default credential chain (environment, profile, instance role).
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=self.region,
        )
        custom = self.endpoint_url is not None
        # Path-style addressing (http://host/bucket/key) for custom endpoints: MinIO and moto
        # serve it without wildcard DNS. AWS itself: botocore's choice.
        style = addressing_style or ("path" if custom else "auto")
        # botocore >= 1.36 adds CRC checksums to every upload by default, which several
        # S3-compatible servers reject; on custom endpoints send them only where required.
        checksums = "when_required" if custom else "when_supported"
        self._config = Config(
            region_name=self.region,
            signature_version="s3v4",
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            # total_max_attempts counts the first try (retries "max_attempts" would not).
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            s3={"addressing_style": style},
            request_checksum_calculation=checksums,
            response_checksum_validation=checksums,
        )
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._signer: Any = None

    def __repr__(self) -> str:  # never the credentials
        return (
            f"S3Storage(bucket={self.bucket!r}, endpoint_url={_for_log(self.endpoint_url)!r}, "
            f"public_endpoint_url={_for_log(self.public_endpoint_url)!r}, region={self.region!r})"
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the clients and make sure the bucket exists; raises ``StorageError`` when the
        server cannot be reached or refuses."""
        if self._client is not None:
            return
        stack = AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                self._session.client("s3", endpoint_url=self.endpoint_url, config=self._config)
            )
            # SigV4 signs the Host header into a presigned URL, so a link signed for the
            # endpoint the workers write to (e.g. http://minio:9000 inside the cluster) is
            # unusable from outside, and rewriting its host afterwards breaks the signature.
            # Links are therefore signed by a second client configured with the public
            # endpoint. Presigning is local computation (no request is sent), so this client
            # never needs to reach the public endpoint from here.
            if self.public_endpoint_url != self.endpoint_url:
                signer = await stack.enter_async_context(
                    self._session.client("s3", endpoint_url=self.public_endpoint_url, config=self._config)
                )
            else:
                signer = client
            self._client, self._signer = client, signer
            await BucketSetup(client, self.bucket, region=self.region, expire_days=self.expire_days)()
        except BaseException:
            self._client = self._signer = None
            await stack.aclose()
            raise
        self._stack = stack
        log.info(
            "S3 storage ready: bucket=%s endpoint=%s public=%s",
            self.bucket,
            _for_log(self.endpoint_url),
            _for_log(self.public_endpoint_url),
        )

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        self._client = self._signer = None
        if stack is not None:
            await stack.aclose()

    def _require(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3Storage used before start()")
        return self._client

    @contextmanager
    def _errors(self, op: str, key: str | None = None, *, missing_is_keyerror: bool = False) -> Iterator[None]:
        """Errors of the server or the network inside the block become ``StorageError``; a
        missing object becomes ``KeyError`` where the port says so."""
        try:
            yield
        except ClientError as exc:
            code, status = error_code(exc), http_status(exc)
            if (
                missing_is_keyerror
                and key is not None
                and (code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"))
            ):
                raise KeyError(key) from None
            raise storage_error(op, self.bucket, exc, key) from exc
        except NETWORK_ERRORS as exc:
            raise storage_error(op, self.bucket, exc, key) from exc

    # ------------------------------------------------------------------ the port

    async def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> StoredImage:
        """Write ``data`` under ``key``, replacing any object there (a redelivered job writes
        the same key again: one object, never two)."""
        client = self._require()
        with self._errors("put", key):
            await client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata=_encode_metadata(metadata),
            )
        return StoredImage(key=key, url=await self.link(key))

    async def get(self, key: str) -> bytes:
        client = self._require()
        with self._errors("get", key, missing_is_keyerror=True):
            response = await client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                return await body.read()

    async def _head(self, key: str) -> dict[str, Any]:
        client = self._require()
        with self._errors("head", key, missing_is_keyerror=True):
            return await client.head_object(Bucket=self.bucket, Key=key)

    async def exists(self, key: str) -> bool:
        try:
            await self._head(key)
        except KeyError:
            return False
        return True

    async def metadata(self, key: str) -> dict[str, str]:
        """Content type and user metadata of ``key``, in the shape ``LocalFolderStorage`` gives:
        ``{"content-type": ..., **metadata}``. Raises ``KeyError`` when missing."""
        head = await self._head(key)
        return {"content-type": head.get("ContentType", ""), **head.get("Metadata", {})}

    async def link(self, key: str) -> str:
        """A presigned GET URL for the public endpoint, valid for ``link_ttl_s`` seconds (or
        until temporary credentials that signed it expire, whichever comes first)."""
        self._require()
        with self._errors("link", key):
            return await self._signer.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.link_ttl_s,
            )
