#!/usr/bin/env python3
"""Print the requirements of pyproject.toml, one per line, for ``pip install -r``.

    requirements_from_pyproject.py pyproject.toml           # [project].dependencies (the bot's)
    requirements_from_pyproject.py pyproject.toml worker    # [project.optional-dependencies].worker

The Dockerfile installs the dependencies from these lists and runs the app from its source folder,
so an image never depends on how the package itself is built (or on files a wheel would leave out).
"""

from __future__ import annotations

import sys
import tomllib


def requirements(pyproject: str, extra: str | None = None) -> list[str]:
    with open(pyproject, "rb") as handle:
        project = tomllib.load(handle)["project"]
    if extra is None:
        return list(project.get("dependencies", []))
    extras = project.get("optional-dependencies", {})
    if extra not in extras:
        raise SystemExit(f"{pyproject}: no optional dependency group {extra!r} (have {sorted(extras)})")
    return list(extras[extra])


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    for line in requirements(argv[1], argv[2] if len(argv) == 3 else None):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
