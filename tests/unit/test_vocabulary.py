"""The domain's shared vocabulary stays in one place: every port in domain/ports.py, every domain
error in domain/errors.py (read from the source, so a class defined elsewhere and re-exported is
still found where it is defined)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import domain.errors

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
# Structural types that are no port: what the stores read a database row as.
NOT_PORTS = {("users.py", "Row")}


def classes(base_names: set[str]) -> dict[str, list[str]]:
    """Classes of each domain module with one of ``base_names`` among their bases' names."""
    found: dict[str, list[str]] = {}
    for path in sorted(DOMAIN.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & base_names and (path.name, node.name) not in NOT_PORTS:
                    found.setdefault(path.name, []).append(node.name)
    return found


def error_names() -> set[str]:
    """The names of DomainError and every subclass defined in domain/errors.py."""
    return {
        name
        for name, value in vars(domain.errors).items()
        if isinstance(value, type) and issubclass(value, domain.errors.DomainError)
    }


def test_every_protocol_is_in_ports():
    found = classes({"Protocol"})
    assert set(found) == {"ports.py"}, found
    assert {"JobQueue", "Storage", "UserStore", "Metrics", "Tracer", "QualityPolicy"} <= set(found["ports.py"])


def test_every_domain_error_is_in_errors():
    found = classes(error_names())
    assert set(found) == {"errors.py"}, found
    assert {"RateLimited", "UnknownParameter", "UndecodableMessage"} <= set(found["errors.py"])


@pytest.mark.parametrize("first", ["domain.users", "domain.ports", "domain.telemetry"])
def test_the_re_exporting_modules_import_in_any_order(first):
    """domain.users and domain.telemetry re-export ports from domain.ports, which names the
    users' values for type checking only: no import cycle, whichever module comes first."""
    code = f"import {first}, domain.users, domain.telemetry, domain.ports as p; print(p.UserStore.__module__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=DOMAIN.parent, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "domain.ports"
