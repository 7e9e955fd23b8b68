#!/usr/bin/env python3
"""Get the real ``helm`` binary for the chart's tests and CI, once, from the Go module proxy.

    python tools/helm_tool.py fetch          # build helm once into the cache; print its path
    python tools/helm_tool.py path           # print the cached binary's path (exit 1 when absent)

No package registry reachable here ships the helm CLI as a binary (Debian has no ``helm``
package; PyPI and npm have only wrappers that expect one), so ``fetch`` builds the released
module ``helm.sh/helm/v3`` with ``go install`` through the Go module proxy, with the same
link-time settings as helm's own Makefile (its version string, and the default Kubernetes
version derived from its k8s.io/client-go requirement). The build itself is tools/go_tool.py's,
shared by every Go tool of the project; this file keeps helm's own entry point and names. The
binary lands in ``$HELM_CACHE_DIR/<version>/helm`` (default ``.cache/helm/<version>/helm``); a
second call finds it and does nothing. A cold build takes about 2.5 minutes on two cores
(docs/deploy-kubernetes.md has the measured figure).

Environment: HELM_VERSION (default in tools/go_tool.py), HELM_CACHE_DIR, GO (the go binary), HELM
(use this helm binary instead, e.g. one installed by a package manager: it must report HELM_VERSION).
The test fixture (tests/helm/conftest.py) calls ``fetch()``; .ci/run runs ``fetch`` before pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import go_tool

TOOL = go_tool.TOOLS["helm"]
DEFAULT_VERSION = TOOL.version


def binary_path(version: str = DEFAULT_VERSION) -> Path:
    return TOOL.binary_path(version)


def reported_version(helm: Path | str) -> str:
    return TOOL.reported(helm)


def fetch(version: str = DEFAULT_VERSION) -> Path:
    """Return a helm binary of ``version``: $HELM, the cached one, or one built now."""
    return TOOL.fetch(version)


if __name__ == "__main__":
    sys.exit(go_tool.main([sys.argv[1] if len(sys.argv) > 1 else "fetch", "helm"]))
