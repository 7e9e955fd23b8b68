#!/usr/bin/env python3
"""Get the real ``helm`` binary for the chart's tests and CI, once, from the Go module proxy.

    python scripts/helm_tool.py fetch          # build helm once into the cache; print its path
    python scripts/helm_tool.py path           # print the cached binary's path (exit 1 when absent)

No package registry reachable here ships the helm CLI as a binary (Debian has no ``helm``
package; PyPI and npm have only wrappers that expect one), so ``fetch`` builds the released
module ``helm.sh/helm/v3`` with ``go install`` through the Go module proxy, with the same
link-time settings as helm's own Makefile (its version string, and the default Kubernetes
version derived from its k8s.io/client-go requirement). The binary lands in
``$HELM_CACHE_DIR/<version>/helm`` (default ``.cache/helm/<version>/helm``); a second call finds it
and does nothing. The Go module and build caches of the build are temporary folders, removed
afterwards, so only the binary (about 60 MB) stays. A cold build takes about 2.5 minutes on two
cores (docs/deploy-kubernetes.md has the measured figure).

Environment: HELM_VERSION (default below), HELM_CACHE_DIR, GO (the go binary), HELM (use this
helm binary instead, e.g. one installed by a package manager: it must report HELM_VERSION).
The test fixture (tests/helm/conftest.py) calls ``fetch()``; .ci/run runs ``fetch`` before pytest.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VERSION = os.environ.get("HELM_VERSION", "v3.22.0")
MODULE = "helm.sh/helm/v3"


def say(*parts: object) -> None:
    print("helm_tool:", *parts, file=sys.stderr, flush=True)


def cache_root() -> Path:
    env = os.environ.get("HELM_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else REPO / ".cache" / "helm"


def binary_path(version: str = DEFAULT_VERSION) -> Path:
    return cache_root() / version / "helm"


def reported_version(helm: Path | str) -> str:
    done = subprocess.run(
        [str(helm), "version", "--template", "{{.Version}}"], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"{helm} version failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def _go() -> str:
    go = os.environ.get("GO") or shutil.which("go")
    if not go and Path("/usr/local/go/bin/go").exists():  # the toolchain's usual place, off PATH
        go = "/usr/local/go/bin/go"
    if not go:
        raise RuntimeError(
            "the Go toolchain (go) is not on PATH: it is needed once to build helm "
            f"{DEFAULT_VERSION} from the Go module proxy"
        )
    return go


def _client_go_minor(go: str, version: str, env: dict[str, str]) -> str:
    """The Kubernetes minor version helm's Makefile derives from its k8s.io/client-go requirement
    (client-go v0.N.x belongs to Kubernetes 1.N)."""
    done = subprocess.run(
        [go, "mod", "download", "-json", f"{MODULE}@{version}"], capture_output=True, text=True, env=env, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(f"go mod download {MODULE}@{version} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    go_mod = Path(json.loads(done.stdout)["GoMod"]).read_text()
    match = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.", go_mod, re.M)
    if not match:
        raise RuntimeError(f"no k8s.io/client-go requirement in {MODULE}@{version}'s go.mod")
    return match.group(1)


def fetch(version: str = DEFAULT_VERSION) -> Path:
    """Return a helm binary of ``version``: $HELM, the cached one, or one built now."""
    override = os.environ.get("HELM")
    if override:
        found = reported_version(override)
        if found != version:
            raise RuntimeError(f"HELM={override} is helm {found}, not {version}")
        return Path(override)
    target = binary_path(version)
    if target.exists() and reported_version(target) == version:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions starting at once build only once
        if target.exists() and reported_version(target) == version:
            return target
        go = _go()
        work = Path(tempfile.mkdtemp(prefix="p2p-helm-build-"))
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
            say(f"building helm {version} from the Go module proxy (once; a few minutes)")
            minor = _client_go_minor(go, version, env)
            ldflags = " ".join(
                [
                    "-s",
                    "-w",
                    f"-X {MODULE}/internal/version.version={version}",
                    f"-X {MODULE}/internal/version.gitTreeState=clean",
                    f"-X {MODULE}/pkg/lint/rules.k8sVersionMajor=1",
                    f"-X {MODULE}/pkg/lint/rules.k8sVersionMinor={minor}",
                    f"-X {MODULE}/pkg/chartutil.k8sVersionMajor=1",
                    f"-X {MODULE}/pkg/chartutil.k8sVersionMinor={minor}",
                ]
            )
            done = subprocess.run(
                [go, "install", "-trimpath", "-ldflags", ldflags, f"{MODULE}/cmd/helm@{version}"],
                capture_output=True,
                text=True,
                env=env,
                timeout=3600,
            )
            built = work / "bin" / "helm"
            if done.returncode != 0 or not built.exists():
                raise RuntimeError(
                    f"go install {MODULE}/cmd/helm@{version} failed (exit {done.returncode}):\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                )
            partial = target.with_name(f"helm.tmp-{os.getpid()}")
            shutil.copy2(built, partial)
            partial.replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        found = reported_version(target)
        if found != version:
            raise RuntimeError(f"the built helm reports {found}, not {version}")
        say(f"built helm {version} (Kubernetes 1.{minor} by default) in {time.monotonic() - started:.0f}s: {target}")
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
            say(f"no helm {version} in {target.parent}; run: python scripts/helm_tool.py fetch")
            return 1
        print(target)
        return 0
    say(f"unknown command {command!r}; use fetch or path")
    return 2


if __name__ == "__main__":
    sys.exit(main())
