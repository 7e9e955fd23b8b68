"""The README stays true: its settings table matches the settings, its test command is the one
CI runs, and its quick-start commands exist."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_settings_table_matches_the_settings_class():
    sys.path.insert(0, str(ROOT / "tools"))
    from settings_table import END, START, table

    documented = README.split(START)[1].split(END)[0].strip()
    assert documented == table(), "run: python tools/settings_table.py --write"


def test_ci_runs_the_readme_test_command():
    assert "python -m pytest" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python3? -m pytest\s*$", ci, re.M)
    assert 'pip install --quiet --disable-pip-version-check -e ".[worker,openvino,test]"' in ci


def test_quick_start_generate_command_works(tmp_path):
    out = tmp_path / "sunset.png"
    done = subprocess.run(
        [
            sys.executable,
            "app.py",
            "generate",
            "a sunset over the ocean",
            "-o",
            str(out),
            "--width",
            "512",
            "--height",
            "384",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GENERATOR": "fake"},
    )
    assert done.returncode == 0, done.stderr
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (512, 384)


def test_generate_refuses_bad_input_clearly(tmp_path):
    done = subprocess.run(
        [sys.executable, "app.py", "generate", "   ", "-o", str(tmp_path / "x.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "The prompt is empty" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_generate_with_the_tiny_wuerstchen_model_offline(tmp_path):
    out = tmp_path / "fox.png"
    done = subprocess.run(
        [
            sys.executable,
            "app.py",
            "generate",
            "a red fox in the snow",
            "-o",
            str(out),
            "--generator",
            "tiny",
            "--width",
            "256",
            "--height",
            "256",
            "--quality",
            "fast",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "HF_HUB_OFFLINE": "1",
            "TINY_MODEL_DIR": str(tmp_path / "tiny"),
            "GENERATOR_THREADS": "1",
        },
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (256, 256)
    assert "profile fast" in done.stdout


def section(title: str) -> str:
    """The README's text under ``### title``, up to the next heading."""
    return README.split(f"### {title}\n", 1)[1].split("\n#", 1)[0]


def bash_blocks(text: str) -> list[list[str]]:
    return [block.strip().splitlines() for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_the_quick_start_says_how_to_run_it_and_how_to_get_real_pictures():
    from config.settings import Settings

    run_it = section("Run it")
    assert bash_blocks(run_it)[0] == ["pip install -e .", "TELEGRAM_BOT_TOKEN=<token from @BotFather> python app.py"]
    flat = " ".join(run_it.split())  # the README's lines are wrapped
    assert f"port {Settings(_env_file=None).http_port} (`HTTP_PORT`)" in flat
    for part in (
        "placeholder, not a generated image: the model is not installed",  # what the user will see
        "pip install torch --index-url https://download.pytorch.org/whl/cpu",
        'pip install -e ".[worker]"',
        "about 12.8 GB",
        "`~/.cache/huggingface/hub` (`HF_HOME`",
    ):
        assert part in flat, part
    from config.factories import REAL_MODEL_HOWTO  # the start-up warning says the same

    assert "about 12.8 GB" in REAL_MODEL_HOWTO and "download.pytorch.org/whl/cpu" in REAL_MODEL_HOWTO


def test_the_quick_start_keeps_what_the_tests_need_apart():
    run_it, test_it = section("Run it"), section("Test it")
    assert bash_blocks(test_it) == [['pip install -e ".[worker,openvino,test]" && python -m pytest']]
    flat = " ".join(test_it.split())
    for need in ("Java 17", "Maven", "Node.js", "npm", "`postgresql`", "bash .ci/run"):
        assert need in flat and need not in run_it, need


async def test_the_run_it_commands_work_on_a_fresh_clone_in_a_fresh_virtualenv(tmp_path, telegram):
    """The two lines of "Run it", as written, on a clone of this repository (its committed tree) in
    a new virtualenv: the package installs, the service starts on the port it names, and a prompt
    sent to the bot comes back as a picture captioned as the placeholder it is (no worker extra)."""
    import asyncio
    import os
    import signal
    import socket

    import aiohttp

    install, start = bash_blocks(section("Run it"))[0]
    clone, venv = tmp_path / "clone", tmp_path / "venv"
    # Blocking calls on a thread: the fake Bot API serves on this event loop.
    await asyncio.to_thread(subprocess.run, ["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "VIRTUAL_ENV": str(venv),
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},  # the machine's index and certificates
    }
    done = await asyncio.to_thread(
        subprocess.run, install, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The line as the shell reads it: its variable assignments, then the command (run directly, so
    # that SIGTERM reaches the service itself).
    words = shlex.split(start.replace("<token from @BotFather>", telegram.token))
    assigned = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
    argv = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    service_env = {
        **env,
        **assigned,
        "TELEGRAM_API_URL": telegram.base_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
    }
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=clone,
        env=service_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            lines.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read())
    try:

        async def until(fragment: str, timeout: float) -> None:
            deadline = asyncio.get_running_loop().time() + timeout
            while not any(fragment in line for line in lines):
                assert proc.returncode is None, "".join(lines)[-3000:]
                assert asyncio.get_running_loop().time() < deadline, "".join(lines)[-3000:]
                await asyncio.sleep(0.1)

        await until(f"prompt2pic running as all on port {port}", 120)
        log = "".join(lines)
        assert "the worker extra is not installed" in log and "PLACEHOLDERS" in log  # the warning
        assert telegram.token not in log
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as reply:
            assert reply.status == 200
        await telegram.wait_polling()
        telegram.send_text(77, "a sunset over the ocean")
        [photo] = await telegram.wait_for(lambda c: c.method == "sendPhoto" and c.chat_id == 77, timeout=60)
        assert "A placeholder, not a generated image: the model is not installed." in photo.text
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        await reader
    assert code == 0, "".join(lines)[-3000:]
