#!/usr/bin/env python3
"""Get the real MinIO server binary for the storage tests and CI, once, from the Go module proxy.

    python tools/minio_tool.py fetch          # build minio once into the cache; print its path
    python tools/minio_tool.py path           # print the cached binary's path (exit 1 when absent)

MinIO is the S3 server docker-compose.yml runs, so the storage contract suite and the bucket
set-up tests run on it too (tests/fixtures/minio.py), not only on moto and s3rver. MinIO no longer
publishes binaries that a package registry reachable here serves, so ``fetch`` builds the module
``github.com/minio/minio`` with ``go install`` through the Go module proxy, as tools/helm_tool.py
does for helm. MinIO's release tags (``RELEASE.2025-...``) are not semantic versions, and the
proxy serves only pseudo-versions of the module (``v0.0.0-<UTC time>-<commit>``); the pinned one
below is the newest the proxy serves (``go list -m github.com/minio/minio@latest``), whose go.mod
asks for Go 1.24. The link-time settings are those of MinIO's own ``buildscripts/gen-ldflags.go``,
with the commit time as the version and a ``DEVELOPMENT.`` release tag (it is not a release).

The build itself is tools/go_tool.py's, shared by every Go tool of the project; this file keeps
MinIO's own entry point and names. The binary lands in ``$MINIO_CACHE_DIR/<version>/minio``
(default ``.cache/minio/<version>/minio``); a second call finds it and does nothing. The Go
module and build caches of the build are temporary folders, removed afterwards, so only the binary
(112 MB) stays. A cold build took 16 and
18 minutes (two runs, /usr/bin/time -v) on two cores shared with other jobs (load about 10), for
6 to 7 minutes of CPU time and 1.5 GB peak memory: about 3 to 4 minutes on two idle cores
(estimated from that CPU time, not measured).

Environment: MINIO_VERSION (default in tools/go_tool.py), MINIO_CACHE_DIR, GO (the go binary),
MINIO_BIN (use this minio binary instead; it must report the pinned commit). The test fixture
(tests/fixtures/minio.py) calls ``fetch()``; .ci/run runs ``fetch`` before pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import go_tool

TOOL = go_tool.TOOLS["minio"]
DEFAULT_VERSION = TOOL.version
MODULE = TOOL.module


def binary_path(version: str = DEFAULT_VERSION) -> Path:
    return TOOL.binary_path(version)


def fetch(version: str = DEFAULT_VERSION) -> Path:
    """Return a minio binary of ``version``: $MINIO_BIN, the cached one, or one built now."""
    return TOOL.fetch(version)


if __name__ == "__main__":
    sys.exit(go_tool.main([sys.argv[1] if len(sys.argv) > 1 else "fetch", "minio"]))
