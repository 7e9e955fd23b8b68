"""Fixtures of the operations tests: Debian's prometheus and prometheus-alertmanager packages
(prometheus, promtool, prometheus-alertmanager, amtool) and the
chart's helm. A missing tool fails the tests, it never skips them (.ci/run installs the package)."""

from __future__ import annotations

import shutil

import pytest

from tests.helm.conftest import Helm, helm_tool


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: apt-get install prometheus (.ci/run installs it)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return need("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return need("prometheus")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    """Debian's prometheus-alertmanager package names its binary so."""
    return need("prometheus-alertmanager")


@pytest.fixture(scope="session")
def helm() -> Helm:
    try:
        binary = helm_tool.fetch()
    except RuntimeError as exc:
        pytest.fail(f"the helm binary could not be obtained: {exc}", pytrace=False)
    return Helm(binary)
