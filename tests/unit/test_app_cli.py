"""The command line as a new operator meets it: ``--help`` for the program, each role and the
``generate`` subcommand, each with its own text, and a role that cannot work alone (a bot or a
worker on the in-memory queue, which reaches only its own process) refused with what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env},
    )


def test_the_program_help_names_the_roles_and_generate():
    done = run("--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("usage: app.py")
    assert "Prompt2Pic: text to image for Telegram." in text
    assert "HTTP_PORT (default 8080)" in text
    for role in ("bot", "worker", "all"):
        assert f"\n  {role:<8}" in text, role  # each role with a line of its own
    assert "generate            make one picture in this process and exit" in text


@pytest.mark.parametrize(
    ("role", "says"),
    [
        ("bot", "Run Prompt2Pic as bot: the Telegram front"),
        ("worker", "Run Prompt2Pic as worker: takes jobs from the queue"),
        ("all", "Run Prompt2Pic as all: the bot and a worker in one process"),
    ],
)
def test_each_role_has_its_own_help(role, says):
    texts = {}
    for args in (("--role", role, "--help"), (f"--role={role}", "-h"), ("--help", "--role", role)):
        done = run(*args)
        assert done.returncode == 0, done.stderr
        texts[args] = " ".join(done.stdout.split())
    assert len(set(texts.values())) == 1  # wherever --help stands
    text = next(iter(texts.values()))
    assert text.startswith(f"usage: app.py --role {role}") and says in text
    assert "roles (--role)" not in text  # not the program's help again


def test_generate_has_its_own_help():
    done = run("generate", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert text.startswith("usage: app.py generate")
    assert "Make one picture through the same use cases as the service" in text
    assert "--generator {auto,fake,tiny,wuerstchen}" in text


@pytest.mark.parametrize(("role", "other"), [("bot", "worker"), ("worker", "bot")])
def test_a_role_alone_on_the_in_memory_queue_refuses_to_start(role, other, tmp_path):
    done = run("--role", role, TELEGRAM_BOT_TOKEN="123456:test", HTTP_PORT="0", MEMORY_QUEUE_FILE=str(tmp_path / "q"))
    assert done.returncode == 2
    assert f"--role {role} cannot work on the in-memory queue (QUEUE_BACKEND=memory)" in done.stderr
    assert f"no {other} would ever see its messages" in done.stderr
    assert "Run --role all" in done.stderr and "QUEUE_BACKEND=kafka" in done.stderr
    assert "prompt2pic running" not in done.stderr  # nothing started
    assert "123456:test" not in done.stderr


def test_lonely_roles_are_only_bot_and_worker_on_memory():
    import app
    from config.settings import Settings

    memory = Settings(_env_file=None)
    kafka = Settings(_env_file=None, queue_backend="kafka")
    assert app.lonely_role("all", memory) is None
    assert app.lonely_role("bot", kafka) is None and app.lonely_role("worker", kafka) is None
    assert app.lonely_role("bot", memory) and app.lonely_role("worker", memory)
