"""S3-compatible object storage through aioboto3: the real adapter of the ``Storage`` port.

- One aioboto3 session and one long-lived client per process, opened in ``start()`` and closed in
  ``stop()`` (a client per call would pay a new connection pool and credential lookup each time).
- botocore retries in ``standard`` mode, with connect and read timeouts; the worker adds its own
  attempts with backoff on top (``ProcessJobs.storage_attempts``) and then fails the job honestly.
- The bucket is created if missing and stays private: objects are written without an ACL (the
  default is private everywhere) and a new bucket gets a public access block where the server
  supports it (AWS, moto). MinIO has no public access blocks (PUT: MalformedXML, GET:
  NotImplemented): its buckets are private unless a bucket policy lets anyone in, so there an
  existing bucket's policy is checked instead (the tests run on moto and on a real MinIO server).
- Users get presigned GET links that expire, signed for the public endpoint (see ``start``).
- Optional lifecycle rule: the images (keys under the domain's ``IMAGE_KEY_PREFIX``) expire after
  ``expire_days`` days. A server that refuses lifecycle rules is logged at start and the images
  are kept (delete them with the server's own tools, e.g. ``mc ilm rule add --expire-days N`` on
  MinIO).
- Errors of the server or the network become ``StorageError`` whose message holds the operation,
  bucket, key, S3 error code and HTTP status only: never credentials, URLs or signatures.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from domain.errors import StorageError
from domain.models import IMAGE_KEY_PREFIX, StoredImage

log = logging.getLogger(__name__)

MAX_LINK_TTL_S = 7 * 24 * 3600
# A link is a bearer token to the picture: a day is enough to open or save it, and a link that
# leaks (a forwarded message, a proxy log) stops working the next day.
DEFAULT_LINK_TTL_S = 24 * 3600
"""SigV4 presigned URLs are valid for at most seven days."""

LIFECYCLE_RULE_ID = "prompt2pic-expire-images"

_PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_NETWORK_ERRORS = (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def _http_status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


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


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _lets_anyone_in(statement: Any) -> bool:
    """An ``Allow`` statement of a bucket policy whose principal is everyone (``"*"``)."""
    if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
        return False
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        principal = principal.get("AWS")
    return "*" in _as_list(principal)


def _same_rule(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """The fields of a lifecycle rule this adapter sets are as wanted (servers may add others)."""
    return all(have.get(field) == value for field, value in want.items())


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
            await self._ensure_bucket()
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

    def _storage_error(self, op: str, exc: BaseException, key: str | None = None) -> StorageError:
        """The ``StorageError`` for a botocore / network error. Its message holds no
        credentials: only the operation, bucket, key, the S3 error code (or the exception
        class) and the HTTP status."""
        if isinstance(exc, ClientError):
            return StorageError(
                op=op,
                bucket=self.bucket,
                key=key,
                reason=_error_code(exc) or "ClientError",
                status=_http_status(exc),
            )
        return StorageError(op=op, bucket=self.bucket, key=key, reason=type(exc).__name__)

    @contextmanager
    def _errors(self, op: str, key: str | None = None, *, missing_is_keyerror: bool = False) -> Iterator[None]:
        """Errors of the server or the network inside the block become ``StorageError``; a
        missing object becomes ``KeyError`` where the port says so."""
        try:
            yield
        except ClientError as exc:
            code, status = _error_code(exc), _http_status(exc)
            if (
                missing_is_keyerror
                and key is not None
                and (code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"))
            ):
                raise KeyError(key) from None
            raise self._storage_error(op, exc, key) from exc
        except _NETWORK_ERRORS as exc:
            raise self._storage_error(op, exc, key) from exc

    async def _ensure_bucket(self) -> None:
        client = self._require()
        exists = True
        try:
            await client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _http_status(exc) != 404:
                raise self._storage_error("head_bucket", exc) from exc
            exists = False
        except _NETWORK_ERRORS as exc:
            raise self._storage_error("head_bucket", exc) from exc
        if not exists:
            await self._create_bucket()
            await self._block_public_access()
        else:
            await self._check_public_access()
        await self._apply_lifecycle()

    async def _create_bucket(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 takes no location constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            # No ACL argument: new buckets are private (and AWS refuses ACLs on buckets with
            # ACLs disabled, the default since 2023).
            await self._client.create_bucket(**kwargs)
            log.info("bucket %s created", self.bucket)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":  # else another worker was first
                raise self._storage_error("create_bucket", exc) from exc
        except _NETWORK_ERRORS as exc:
            raise self._storage_error("create_bucket", exc) from exc

    async def _block_public_access(self) -> None:
        try:
            await self._client.put_public_access_block(
                Bucket=self.bucket,
                PublicAccessBlockConfiguration=dict.fromkeys(_PUBLIC_ACCESS_FLAGS, True),
            )
        except ClientError as exc:
            if await self._has_no_public_access_blocks():
                # MinIO has no public access blocks. It answers this PUT with MalformedXML (its
                # router takes it for a bucket creation and fails to parse the body) and the GET
                # with NotImplemented. Its buckets are private unless a bucket policy says
                # otherwise, a new bucket has none, and this adapter never writes one.
                log.info(
                    "bucket %s: the server has no public access blocks; the new bucket has no policy, so it is private",
                    self.bucket,
                )
                return
            log.warning(
                "bucket %s: public access block not set (server said %s); objects are still written private",
                self.bucket,
                _error_code(exc) or _http_status(exc),
            )
        except _NETWORK_ERRORS as exc:
            raise self._storage_error("put_public_access_block", exc) from exc

    async def _has_no_public_access_blocks(self) -> bool:
        """The server does not implement public access blocks at all (MinIO)."""
        try:
            await self._client.get_public_access_block(Bucket=self.bucket)
        except ClientError as exc:
            return _error_code(exc) == "NotImplemented"
        except _NETWORK_ERRORS as exc:
            raise self._storage_error("get_public_access_block", exc) from exc
        return False

    async def _check_public_access(self) -> None:
        """An existing bucket is left as its owner set it up; say so when it may be public."""
        try:
            got = await self._client.get_public_access_block(Bucket=self.bucket)
            config = got.get("PublicAccessBlockConfiguration", {})
        except ClientError as exc:
            code = _error_code(exc)
            if code == "NotImplemented":  # MinIO: no blocks; its bucket policy alone decides
                await self._check_bucket_policy()
                return
            if code != "NoSuchPublicAccessBlockConfiguration":
                log.debug("bucket %s: public access block not readable: %s", self.bucket, code)
                return
            config = {}
        except _NETWORK_ERRORS as exc:
            raise self._storage_error("get_public_access_block", exc) from exc
        if not all(config.get(flag) for flag in _PUBLIC_ACCESS_FLAGS):
            log.warning(
                "bucket %s exists and does not block all public access, so it may be public; this "
                "service writes private objects only, but check the bucket's policy",
                self.bucket,
            )

    async def _check_bucket_policy(self) -> None:
        """On a server without public access blocks (MinIO), a bucket is public when its bucket
        policy allows anonymous users something (``mc anonymous set download`` writes such a
        policy; ``mc anonymous set none`` removes it). The policy is read rather than asked about:
        MinIO's GetBucketPolicyStatus says ``IsPublic`` only when anyone may both list and write,
        so a download-only policy, which publishes every picture, would read as private."""
        try:
            got = await self._client.get_bucket_policy(Bucket=self.bucket)
            policy = json.loads(got.get("Policy") or "{}")
        except ClientError as exc:
            if _error_code(exc) != "NoSuchBucketPolicy":  # e.g. the bot's read-only user: AccessDenied
                log.debug("bucket %s: bucket policy not readable: %s", self.bucket, _error_code(exc))
            return
        except ValueError:
            log.warning("bucket %s: its bucket policy is not JSON; check who may read it", self.bucket)
            return
        except _NETWORK_ERRORS as exc:
            raise self._storage_error("get_bucket_policy", exc) from exc
        if any(_lets_anyone_in(statement) for statement in _as_list(policy.get("Statement"))):
            log.warning(
                "bucket %s exists and its bucket policy lets anyone in, so it is public; this service "
                "writes private objects only, but remove that policy (mc anonymous set none)",
                self.bucket,
            )

    async def _apply_lifecycle(self) -> None:
        """Make this adapter's expiry rule match ``expire_days``: added or updated when > 0,
        removed when 0. Other rules of the bucket are kept as they are."""
        client = self._client
        try:
            try:
                got = await client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
                rules = list(got.get("Rules", []))
            except ClientError as exc:
                if _error_code(exc) != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            others = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
            if self.expire_days > 0:
                rule = {
                    "ID": LIFECYCLE_RULE_ID,
                    "Filter": {"Prefix": IMAGE_KEY_PREFIX},
                    "Status": "Enabled",
                    "Expiration": {"Days": self.expire_days},
                }
                if any(_same_rule(r, rule) for r in rules):
                    # Already so (set by a worker): nothing to write. The bot's read-only key
                    # may not write it, and need not.
                    return
                await client.put_bucket_lifecycle_configuration(
                    Bucket=self.bucket, LifecycleConfiguration={"Rules": [*others, rule]}
                )
                log.info("bucket %s: images expire after %d days", self.bucket, self.expire_days)
            elif len(others) != len(rules):
                if others:
                    await client.put_bucket_lifecycle_configuration(
                        Bucket=self.bucket, LifecycleConfiguration={"Rules": others}
                    )
                else:
                    await client.delete_bucket_lifecycle(Bucket=self.bucket)
                log.info("bucket %s: image expiry rule removed (expire_days=0)", self.bucket)
        except (ClientError, *_NETWORK_ERRORS) as exc:
            reason = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            if self.expire_days > 0:
                log.warning(
                    "bucket %s: lifecycle rule not set (server said %s); images are kept, "
                    "expire them with the server's own tools",
                    self.bucket,
                    reason,
                )
            else:
                log.debug("bucket %s: lifecycle not checked: %s", self.bucket, reason)

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
