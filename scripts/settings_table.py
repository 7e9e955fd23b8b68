"""Print the README's settings table from ``config.settings.Settings``.

    python scripts/settings_table.py            # print the table
    python scripts/settings_table.py --write    # replace it in README.md
"""

from __future__ import annotations

import json
import re
import sys
from enum import Enum
from pathlib import Path

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402

START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def default_text(value: object) -> str:
    if isinstance(value, SecretStr):
        return "(secret, empty)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, dict | list | set):
        return json.dumps(sorted(value) if isinstance(value, set) else value) if value else "(empty)"
    text = str(value)
    return text if text else "(empty)"


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        rows.append(f"| `{name.upper()}` | `{default_text(default)}` | {field.description} |")
    return "\n".join(rows)


def main() -> None:
    text = table()
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        content = readme.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        readme.write_text(pattern.sub(f"{START}\n{text}\n{END}", content), encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
