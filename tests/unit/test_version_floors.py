"""The dependency floors in pyproject.toml stand above every known advisory of a direct dependency,
and the versions the Dockerfile pins satisfy them.

``ADVISORIES`` is the list looked up (GitHub advisories, OSV, the projects' release notes) when the
floors were last raised: the lowest version that fixes the advisories named. A floor lowered below
it, or a new dependency line that drops the floor, fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

# package -> (lowest version without the advisories, the advisories)
ADVISORIES: dict[str, tuple[str, str]] = {
    "torch": ("2.10", "CVE-2025-32434 (torch.load weights_only bypass, 2.6), CVE-2026-24747 (2.10)"),
    "aiohttp": (
        "3.14.3",
        "CVE-2025-53643 (3.12.14), CVE-2025-69223.. (3.13.3), CVE-2026-34513.. (3.13.4), "
        "CVE-2026-54273..54280 (3.14.1), CVE-2026-69244 (3.14.3)",
    ),
    "pillow": ("12.3.0", "CVE-2026-25990 (12.1.1), CVE-2026-40192 (12.2.0), CVE-2026-55379 (12.3.0)"),
    "transformers": ("5.5.0", "CVE-2024-11392..11394 (4.48), CVE-2026-5241 (5.5.0)"),
    "diffusers": ("0.38.0", "CVE-2026-44513 (trust_remote_code bypass)"),
    "safetensors": ("0.8.0", "required by diffusers 0.38"),
    "python-json-logger": ("3.3.0", "CVE-2025-27607"),
    "setuptools": ("78.1.1", "CVE-2025-47273"),
}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = list(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        lines += extra
    lines += project["build-system"]["requires"]
    found: dict[str, Requirement] = {}
    for line in lines:
        requirement = Requirement(line)
        found[requirement.name.lower()] = requirement
    return found


def floor(requirement: Requirement) -> Version | None:
    lows = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    return max(lows) if lows else None


@pytest.mark.parametrize("package", sorted(ADVISORIES))
def test_floor_is_above_the_known_advisories(package):
    minimum, advisories = ADVISORIES[package]
    requirement = requirements().get(package)
    assert requirement is not None, f"{package} is no longer a dependency: update ADVISORIES"
    low = floor(requirement)
    assert low is not None and low >= Version(minimum), (
        f"pyproject.toml admits {package} {requirement.specifier or '(any)'}, below {minimum} ({advisories})"
    )
    # No version below the floor slips through another clause of the specifier.
    assert not requirement.specifier.contains(Version("0.1"), prereleases=True)


def test_the_dockerfile_pins_satisfy_the_floors():
    dockerfile = (ROOT / "Dockerfile").read_text()
    pins = re.findall(r"^ARG TORCH_VERSION=(\S+)$", dockerfile, re.M)
    assert pins, "the Dockerfile no longer pins TORCH_VERSION: check what it installs"
    torch = requirements()["torch"]
    for pin in pins:
        assert torch.specifier.contains(pin), f"the Dockerfile pins torch {pin}, outside {torch.specifier}"
