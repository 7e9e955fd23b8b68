"""The secret-writing steps of docs/deploy.md, run as written: first the set-up, then the same
lines again as a rotation. Before, the files were made 0444 under `umask 0222` and a second run
failed with "Permission denied" for their owner."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "deploy.md"
NAMES = {
    "telegram_bot_token",
    "telegram_webhook_secret",
    "s3_secret_access_key",
    "s3_bot_secret_access_key",
    "grafana_admin_password",
}


def secrets_block() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    [block] = [b for b in blocks if "put_secret()" in b]
    return block


def run_as_a_user(script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """As an unprivileged user (root may write any file, which would hide the failure)."""
    command = ["sh", "-eu", "-c", script]
    if os.geteuid() == 0:
        user = next(u for u in ("postgres", "nobody") if _has_user(u))
        shutil.chown(folder, user)
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=60)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_the_documented_secret_steps_write_and_rotate(tmp_path):
    block = secrets_block()
    assert "umask" not in block and "printf %s" in block
    written = []
    for token in ("111111:first-token", "222222:rotated-token"):
        done = run_as_a_user(block.replace("<token from @BotFather>", token), tmp_path)
        assert done.returncode == 0, done.stderr
        folder = tmp_path / "secrets"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = {p.name: p for p in folder.iterdir()}
        assert set(files) == NAMES
        for path in files.values():
            assert stat.S_IMODE(path.stat().st_mode) == 0o444, path.name
            value = path.read_text()
            assert value and value == value.strip(), f"{path.name}: surrounding whitespace"
        assert files["telegram_bot_token"].read_text() == token
        assert re.fullmatch(r"[0-9a-f]{64}", files["telegram_webhook_secret"].read_text())
        written.append({name: p.read_text() for name, p in files.items()})
    first, second = written
    assert all(first[name] != second[name] for name in NAMES), "every secret is new after the rotation"
