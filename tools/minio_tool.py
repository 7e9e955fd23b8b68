#!/usr/bin/env python3
"""Get the real MinIO server binary for the storage tests and CI, once, from the Go module proxy.

    python scripts/minio_tool.py fetch          # build minio once into the cache; print its path
    python scripts/minio_tool.py path           # print the cached binary's path (exit 1 when absent)

MinIO is the S3 server docker-compose.yml runs, so the storage contract suite and the bucket
set-up tests run on it too (tests/fixtures/minio.py), not only on moto and s3rver. MinIO no longer
publishes binaries that a package registry reachable here serves, so ``fetch`` builds the module
``github.com/minio/minio`` with ``go install`` through the Go module proxy, as scripts/helm_tool.py
does for helm. MinIO's release tags (``RELEASE.2025-...``) are not semantic versions, and the
proxy serves only pseudo-versions of the module (``v0.0.0-<UTC time>-<commit>``); the pinned one
below is the newest the proxy serves (``go list -m github.com/minio/minio@latest``), whose go.mod
asks for Go 1.24. The link-time settings are those of MinIO's own ``buildscripts/gen-ldflags.go``,
with the commit time as the version and a ``DEVELOPMENT.`` release tag (it is not a release).

The binary lands in ``$MINIO_CACHE_DIR/<version>/minio`` (default ``.cache/minio/<version>/minio``);
a second call finds it and does nothing. The Go module and build caches of the build are
temporary folders, removed afterwards, so only the binary (112 MB) stays. A cold build took 16 and
18 minutes (two runs, /usr/bin/time -v) on two cores shared with other jobs (load about 10), for
6 to 7 minutes of CPU time and 1.5 GB peak memory: about 3 to 4 minutes on two idle cores
(estimated from that CPU time, not measured).

Environment: MINIO_VERSION (default below), MINIO_CACHE_DIR, GO (the go binary), MINIO_BIN (use
this minio binary instead; it must report the pinned commit). The test fixture
(tests/fixtures/minio.py) calls ``fetch()``; .ci/run runs ``fetch`` before pytest.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VERSION = os.environ.get("MINIO_VERSION", "v0.0.0-20260212201848-7aac2a2c5b7c")
MODULE = "github.com/minio/minio"
_PSEUDO = re.compile(r"^v0\.0\.0-(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})-([0-9a-f]{12})$")


def say(*parts: object) -> None:
    print("minio_tool:", *parts, file=sys.stderr, flush=True)


def cache_root() -> Path:
    env = os.environ.get("MINIO_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else REPO / ".cache" / "minio"


def binary_path(version: str = DEFAULT_VERSION) -> Path:
    return cache_root() / version / "minio"


def _parts(version: str) -> tuple[str, str, str]:
    """(commit time as RFC 3339, the release tag MinIO's build script would derive, the commit)."""
    match = _PSEUDO.match(version)
    if not match:
        raise RuntimeError(f"{version!r} is not a pseudo-version of {MODULE} (v0.0.0-<time>-<commit>)")
    y, mo, d, h, mi, s, commit = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}Z", f"DEVELOPMENT.{y}-{mo}-{d}T{h}-{mi}-{s}Z", commit


def reported_commit(minio: Path | str) -> str:
    """The commit the binary says it was built from (``minio --version``)."""
    done = subprocess.run([str(minio), "--version"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{minio} --version failed (exit {done.returncode}): {done.stderr.strip()}")
    match = re.search(r"commit-id=([0-9a-f]+)", done.stdout)
    return match.group(1) if match else ""


def _matches(minio: Path | str, version: str) -> bool:
    return reported_commit(minio).startswith(_parts(version)[2])


def _go() -> str:
    go = os.environ.get("GO") or shutil.which("go")
    if not go and Path("/usr/local/go/bin/go").exists():  # the toolchain's usual place, off PATH
        go = "/usr/local/go/bin/go"
    if not go:
        raise RuntimeError(
            "the Go toolchain (go) is not on PATH: it is needed once to build minio "
            f"{DEFAULT_VERSION} from the Go module proxy"
        )
    return go


def fetch(version: str = DEFAULT_VERSION) -> Path:
    """Return a minio binary of ``version``: $MINIO_BIN, the cached one, or one built now."""
    stamp, release_tag, commit = _parts(version)
    override = os.environ.get("MINIO_BIN")
    if override:
        if not _matches(override, version):
            raise RuntimeError(f"MINIO_BIN={override} is not minio {version} (commit {commit})")
        return Path(override)
    target = binary_path(version)
    if target.exists() and _matches(target, version):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions starting at once build only once
        if target.exists() and _matches(target, version):
            return target
        go = _go()
        work = Path(tempfile.mkdtemp(prefix="p2p-minio-build-"))
        env = {
            **os.environ,
            "GOPATH": str(work / "gopath"),
            "GOMODCACHE": str(work / "mod"),
            "GOCACHE": str(work / "build"),
            "GOBIN": str(work / "bin"),
            "CGO_ENABLED": "0",
            "GOFLAGS": "-buildvcs=false -modcacherw",  # -modcacherw: the temp cache can be removed
        }
        started = time.monotonic()
        try:
            say(f"building minio {version} from the Go module proxy (once; several minutes)")
            pkg = f"{MODULE}/cmd"
            ldflags = " ".join(
                [
                    "-s",
                    "-w",
                    f"-X {pkg}.Version={stamp}",
                    f"-X {pkg}.CopyrightYear={stamp[:4]}",
                    f"-X {pkg}.ReleaseTag={release_tag}",
                    f"-X {pkg}.CommitID={commit}",
                    f"-X {pkg}.ShortCommitID={commit}",
                ]
            )
            done = subprocess.run(
                [go, "install", "-trimpath", "-ldflags", ldflags, f"{MODULE}@{version}"],
                capture_output=True,
                text=True,
                env=env,
                timeout=3600,
            )
            built = work / "bin" / "minio"
            if done.returncode != 0 or not built.exists():
                raise RuntimeError(
                    f"go install {MODULE}@{version} failed (exit {done.returncode}):\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                )
            partial = target.with_name(f"minio.tmp-{os.getpid()}")
            shutil.copy2(built, partial)
            partial.replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if not _matches(target, version):
            raise RuntimeError(f"the built minio reports commit {reported_commit(target)!r}, not {commit}")
        say(f"built minio {version} in {time.monotonic() - started:.0f}s: {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "fetch"
    version = args[1] if len(args) > 1 else DEFAULT_VERSION
    if command == "fetch":
        try:
            print(fetch(version))
        except RuntimeError as exc:
            say(str(exc))
            return 1
        return 0
    if command == "path":
        target = binary_path(version)
        if not target.exists():
            say(f"no minio {version} in {target.parent}; run: python scripts/minio_tool.py fetch")
            return 1
        print(target)
        return 0
    say(f"unknown command {command!r}; use fetch or path")
    return 2


if __name__ == "__main__":
    sys.exit(main())
