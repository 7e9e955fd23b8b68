"""The S3 bucket's set-up at start: created if missing and kept private, an existing one checked
for public access, and this service's expiry rule kept as ``expire_days`` says.

- Objects are written without an ACL (the default is private everywhere) and a new bucket gets a
  public access block where the server supports it (AWS, moto). MinIO has no public access blocks
  (PUT: MalformedXML, GET: NotImplemented): its buckets are private unless a bucket policy lets
  anyone in, so there an existing bucket's policy is checked instead (the tests run on moto and on
  a real MinIO server).
- Optional lifecycle rule: the images (keys under the domain's ``IMAGE_KEY_PREFIX``) expire after
  ``expire_days`` days. A server that refuses lifecycle rules is logged at start and the images
  are kept (delete them with the server's own tools, e.g. ``mc ilm rule add --expire-days N`` on
  MinIO).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from adapters.s3.errors import NETWORK_ERRORS, error_code, http_status, storage_error
from domain.errors import StorageError
from domain.models import IMAGE_KEY_PREFIX

log = logging.getLogger(__name__)

LIFECYCLE_RULE_ID = "prompt2pic-expire-images"

_PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


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


class BucketSetup:
    """Sets up ``bucket`` through an open aioboto3 S3 ``client`` (``S3Storage.start`` calls it once)."""

    def __init__(self, client: Any, bucket: str, *, region: str, expire_days: int) -> None:
        self.client = client
        self.bucket = bucket
        self.region = region
        self.expire_days = expire_days

    def _error(self, op: str, exc: BaseException) -> StorageError:
        return storage_error(op, self.bucket, exc)

    async def __call__(self) -> None:
        """Create the bucket if missing (private), or check an existing one's public access;
        then the expiry rule. Raises ``StorageError`` when the server cannot be reached or refuses."""
        client = self.client
        exists = True
        try:
            await client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if http_status(exc) != 404:
                raise self._error("head_bucket", exc) from exc
            exists = False
        except NETWORK_ERRORS as exc:
            raise self._error("head_bucket", exc) from exc
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
            await self.client.create_bucket(**kwargs)
            log.info("bucket %s created", self.bucket)
        except ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":  # else another worker was first
                raise self._error("create_bucket", exc) from exc
        except NETWORK_ERRORS as exc:
            raise self._error("create_bucket", exc) from exc

    async def _block_public_access(self) -> None:
        try:
            await self.client.put_public_access_block(
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
                error_code(exc) or http_status(exc),
            )
        except NETWORK_ERRORS as exc:
            raise self._error("put_public_access_block", exc) from exc

    async def _has_no_public_access_blocks(self) -> bool:
        """The server does not implement public access blocks at all (MinIO)."""
        try:
            await self.client.get_public_access_block(Bucket=self.bucket)
        except ClientError as exc:
            return error_code(exc) == "NotImplemented"
        except NETWORK_ERRORS as exc:
            raise self._error("get_public_access_block", exc) from exc
        return False

    async def _check_public_access(self) -> None:
        """An existing bucket is left as its owner set it up; say so when it may be public."""
        try:
            got = await self.client.get_public_access_block(Bucket=self.bucket)
            config = got.get("PublicAccessBlockConfiguration", {})
        except ClientError as exc:
            code = error_code(exc)
            if code == "NotImplemented":  # MinIO: no blocks; its bucket policy alone decides
                await self._check_bucket_policy()
                return
            if code != "NoSuchPublicAccessBlockConfiguration":
                log.debug("bucket %s: public access block not readable: %s", self.bucket, code)
                return
            config = {}
        except NETWORK_ERRORS as exc:
            raise self._error("get_public_access_block", exc) from exc
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
            got = await self.client.get_bucket_policy(Bucket=self.bucket)
            policy = json.loads(got.get("Policy") or "{}")
        except ClientError as exc:
            if error_code(exc) != "NoSuchBucketPolicy":  # e.g. the bot's read-only user: AccessDenied
                log.debug("bucket %s: bucket policy not readable: %s", self.bucket, error_code(exc))
            return
        except ValueError:
            log.warning("bucket %s: its bucket policy is not JSON; check who may read it", self.bucket)
            return
        except NETWORK_ERRORS as exc:
            raise self._error("get_bucket_policy", exc) from exc
        if any(_lets_anyone_in(statement) for statement in _as_list(policy.get("Statement"))):
            log.warning(
                "bucket %s exists and its bucket policy lets anyone in, so it is public; this service "
                "writes private objects only, but remove that policy (mc anonymous set none)",
                self.bucket,
            )

    async def _apply_lifecycle(self) -> None:
        """Make this adapter's expiry rule match ``expire_days``: added or updated when > 0,
        removed when 0. Other rules of the bucket are kept as they are."""
        client = self.client
        try:
            try:
                got = await client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
                rules = list(got.get("Rules", []))
            except ClientError as exc:
                if error_code(exc) != "NoSuchLifecycleConfiguration":
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
        except (ClientError, *NETWORK_ERRORS) as exc:
            reason = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            if self.expire_days > 0:
                log.warning(
                    "bucket %s: lifecycle rule not set (server said %s); images are kept, "
                    "expire them with the server's own tools",
                    self.bucket,
                    reason,
                )
            else:
                log.debug("bucket %s: lifecycle not checked: %s", self.bucket, reason)
