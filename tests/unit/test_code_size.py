"""Rooms small enough to read: no class over 200 lines and no function over 60 lines in the
Telegram adapter and the use cases (measured from the source with ``ast``: a definition's first
line, decorators left out, to its last, docstring and comments included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("adapters/telegram", "domain/use_cases")
MAX_CLASS = 200
MAX_FUNCTION = 60
FILES = sorted(path for folder in FOLDERS for path in (ROOT / folder).rglob("*.py"))


def oversized(path: Path) -> list[str]:
    """The classes and functions of ``path`` over the limits, with their sizes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            limit = MAX_CLASS
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            limit = MAX_FUNCTION
        else:
            continue
        lines = (node.end_lineno or node.lineno) - node.lineno + 1
        if lines > limit:
            found.append(f"{node.name} ({lines} lines, at most {limit})")
    return found


def test_the_folders_are_measured():
    names = {path.relative_to(ROOT).as_posix() for path in FILES}
    assert {"adapters/telegram/sender.py", "domain/use_cases/admit.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_class_or_function_too_long(path: Path):
    assert oversized(path) == []


def test_the_measure_sees_a_long_function(tmp_path: Path):
    source = tmp_path / "long.py"
    body = "\n".join(f"    x{n} = {n}" for n in range(MAX_FUNCTION))
    source.write_text(f"def long():\n{body}\n\n\nclass Short:\n    pass\n")
    assert oversized(source) == [f"long ({MAX_FUNCTION + 1} lines, at most {MAX_FUNCTION})"]
