"""Image links live a day by default, everywhere the default is written: the settings, both
storages' own defaults and .env.example (a link opens the picture for whoever holds it)."""

from __future__ import annotations

import inspect
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from adapters.embedded.storage import LocalFolderStorage
from adapters.s3.storage import MAX_LINK_TTL_S, S3Storage
from config.settings import Settings

DAY = 24 * 3600
ROOT = Path(__file__).resolve().parents[2]


def test_every_default_link_lifetime_is_a_day():
    assert Settings(_env_file=None).link_ttl_s == DAY
    assert inspect.signature(S3Storage).parameters["link_ttl_s"].default == DAY
    assert inspect.signature(LocalFolderStorage).parameters["link_ttl_s"].default == DAY
    assert S3Storage("bucket").link_ttl_s == DAY
    [example] = re.findall(r"^LINK_TTL_S=(\d+)$", (ROOT / ".env.example").read_text(), re.M)
    assert int(example) == DAY
    assert DAY < MAX_LINK_TTL_S  # still within what SigV4 allows, which stays the upper bound


async def test_a_local_link_expires_a_day_after_it_is_made(tmp_path):
    storage = LocalFolderStorage(tmp_path, public_base_url="https://p2p.example.org")
    await storage.start()
    before = time.time()
    stored = await storage.put("images/job.png", b"png", "image/png", {})
    expires = int(parse_qs(urlsplit(stored.url).query)["exp"][0])
    assert before + DAY - 1 <= expires <= time.time() + DAY + 1
