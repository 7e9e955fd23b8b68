"""The storage contract, run against every adapter of the ``Storage`` port: the local folder
(with and without a public URL) and S3 over HTTP, on moto's server and on the real MinIO server
that docker-compose.yml runs (MinIO checks the signature and expiry of the links it serves).

Each adapter comes with a small harness for what the port does not offer: how a user opens a
link, and how many objects the store holds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from urllib.request import url2pathname

import aiohttp
import pytest

from adapters.embedded.storage import LocalFolderStorage
from domain.models import StoredImage, image_key

PNG = b"\x89PNG\r\n\x1a\n" + b"first image" * 50
PNG2 = b"\x89PNG\r\n\x1a\n" + b"second image" * 70
META = {
    "job-id": "job1",
    "prompt-sha256": "0123456789abcdef",
    "seed": "42",
    "model": "fake",
    "profile": "fast",
}


class LocalHarness:
    def __init__(self, root: Path, public_base_url: str | None = None) -> None:
        self.public_base_url = public_base_url
        self.storage = LocalFolderStorage(root, public_base_url=public_base_url, link_ttl_s=60)

    async def open_link(self, key: str, link: str) -> bytes:
        if self.public_base_url is None:
            # No public URL: the link is a file URI the user (on this machine) can open.
            parts = urlsplit(link)
            assert parts.scheme == "file", link
            return await asyncio.to_thread(Path(url2pathname(parts.path)).read_bytes)
        # A public URL: the app's HTTP endpoint serves the file after checking the signed token.
        parts = urlsplit(link)
        prefix = urlsplit(self.public_base_url.rstrip("/") + "/files/")
        assert (parts.scheme, parts.netloc) == (prefix.scheme, prefix.netloc), link
        assert parts.path.startswith(prefix.path), link
        linked_key = unquote(parts.path[len(prefix.path) :])
        assert linked_key == key
        query = parse_qs(parts.query)
        expires, signature = int(query["exp"][0]), query["sig"][0]
        assert self.storage.verify(linked_key, expires, signature)
        assert not self.storage.verify(linked_key, expires, "0" * len(signature))
        assert not self.storage.verify(linked_key, expires, signature, now=expires + 1)
        return await self.storage.get(linked_key)

    async def object_count(self) -> int:
        root = self.storage.root
        return sum(
            1
            for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(".meta.json") and not p.name.startswith(".tmp-")
        )

    async def close(self) -> None:
        await self.storage.stop()


class S3Harness:
    def __init__(self, endpoint, bucket: str) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.storage = endpoint.storage(bucket)

    async def open_link(self, key: str, link: str) -> bytes:
        # Signed for the public endpoint, and opened by a plain HTTP client: no SDK, no keys.
        assert link.startswith(self.endpoint.public_url + "/"), link
        async with aiohttp.ClientSession() as http, http.get(link) as response:
            assert response.status == 200, await response.text()
            return await response.read()

    async def object_count(self) -> int:
        async with self.endpoint.client() as client:
            listed = await client.list_objects_v2(Bucket=self.bucket)
        return listed["KeyCount"]

    async def close(self) -> None:
        await self.storage.stop()


@pytest.fixture(
    params=[
        "local",
        "local-public",
        pytest.param("s3", marks=pytest.mark.s3),
        pytest.param("s3-minio", marks=pytest.mark.s3),
    ]
)
async def storage_harness(request, tmp_path):
    if request.param == "local":
        harness = LocalHarness(tmp_path / "images")
    elif request.param == "local-public":
        harness = LocalHarness(tmp_path / "images", public_base_url="https://p2p.example.org/")
    else:
        endpoint = request.getfixturevalue("s3_endpoint" if request.param == "s3" else "minio_endpoint")
        harness = S3Harness(endpoint, request.getfixturevalue("s3_bucket"))
    await harness.storage.start()
    try:
        yield harness
    finally:
        await harness.close()


async def test_put_then_get_round_trip(storage_harness):
    storage = storage_harness.storage
    key = image_key("round-trip")
    stored = await storage.put(key, PNG, "image/png", META)
    assert isinstance(stored, StoredImage)
    assert stored.key == key
    assert await storage.get(key) == PNG


async def test_content_type_and_metadata_are_kept(storage_harness):
    storage = storage_harness.storage
    key = image_key("with-metadata")
    await storage.put(key, PNG, "image/png", META)
    assert await storage.metadata(key) == {"content-type": "image/png", **META}


async def test_same_key_is_replaced_not_duplicated(storage_harness):
    storage = storage_harness.storage
    key = image_key("twice")
    await storage.put(key, PNG, "image/png", META)
    await storage.put(key, PNG2, "image/webp", {**META, "seed": "43"})
    assert await storage.get(key) == PNG2
    assert await storage.metadata(key) == {"content-type": "image/webp", **META, "seed": "43"}
    assert await storage_harness.object_count() == 1


async def test_exists(storage_harness):
    storage = storage_harness.storage
    key = image_key("exists")
    assert await storage.exists(key) is False
    await storage.put(key, PNG, "image/png", META)
    assert await storage.exists(key) is True
    assert await storage.exists(image_key("other")) is False


async def test_get_of_a_missing_key_raises_key_error(storage_harness):
    with pytest.raises(KeyError):
        await storage_harness.storage.get(image_key("never-stored"))


async def test_link_opens_to_the_bytes(storage_harness):
    storage = storage_harness.storage
    key = image_key("linked")
    stored = await storage.put(key, PNG, "image/png", META)
    assert isinstance(stored.url, str) and stored.url
    assert await storage_harness.open_link(key, stored.url) == PNG
    again = await storage.link(key)
    assert isinstance(again, str)
    assert await storage_harness.open_link(key, again) == PNG


async def test_keys_are_stable_and_separate(storage_harness):
    storage = storage_harness.storage
    assert image_key("job-a") == image_key("job-a") == "images/job-a.png"
    first = await storage.put(image_key("job-a"), PNG, "image/png", META)
    second = await storage.put(image_key("job-b"), PNG2, "image/png", META)
    assert (first.key, second.key) == ("images/job-a.png", "images/job-b.png")
    assert await storage.get("images/job-a.png") == PNG
    assert await storage.get("images/job-b.png") == PNG2
    assert await storage_harness.object_count() == 2
