"""Local-folder storage: the embedded default. Same contract as S3: stable keys, replace on
rewrite, metadata, and links the user can open (signed, expiring links served by the app's HTTP
endpoint when a public URL is set, a file URI otherwise)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from domain.errors import StorageError
from domain.models import StoredImage


class LocalFolderStorage:
    def __init__(
        self,
        root: str | Path,
        *,
        public_base_url: str | None = None,
        link_ttl_s: int = 24 * 3600,  # as S3Storage: a day
        signing_key: bytes | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.link_ttl_s = link_ttl_s
        self.signing_key = signing_key or secrets.token_bytes(32)

    async def start(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def stop(self) -> None:
        pass

    def path_of(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents or key.endswith(".meta.json"):
            raise StorageError(reason="invalid key")
        return path

    def _write(self, path: Path, data: bytes, meta: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, payload in ((path.with_name(path.name + ".meta.json"), json.dumps(meta).encode()), (path, data)):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                os.replace(tmp, target)  # atomic: a reader sees the old or the new file, never half
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    async def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> StoredImage:
        path = self.path_of(key)
        meta = {"content-type": content_type, **metadata}
        try:
            await asyncio.to_thread(self._write, path, data, meta)
        except OSError as exc:
            raise StorageError(reason=type(exc).__name__) from exc
        return StoredImage(key=key, url=await self.link(key))

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_of(key).read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    async def metadata(self, key: str) -> dict[str, str]:
        path = self.path_of(key)
        raw = await asyncio.to_thread(path.with_name(path.name + ".meta.json").read_bytes)
        return json.loads(raw)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_of(key).is_file)

    async def delete(self, key: str) -> None:
        path = self.path_of(key)
        for p in (path, path.with_name(path.name + ".meta.json")):
            await asyncio.to_thread(p.unlink, True)

    async def link(self, key: str) -> str:
        if not self.public_base_url:
            return self.path_of(key).as_uri()
        expires = int(time.time()) + self.link_ttl_s
        query = urlencode({"exp": expires, "sig": self.sign(key, expires)})
        return f"{self.public_base_url}/files/{quote(key)}?{query}"

    def sign(self, key: str, expires: int) -> str:
        return hmac.new(self.signing_key, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        """True when the link is genuine and not expired (the HTTP endpoint's check)."""
        if (now if now is not None else time.time()) > expires:
            return False
        # As bytes: compare_digest on str raises on anything but ASCII (a 500 for a forged link).
        return hmac.compare_digest(self.sign(key, expires).encode(), signature.encode("utf-8", "surrogatepass"))
