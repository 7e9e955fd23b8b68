"""The README stays true: its settings table matches the settings, its test command is the one
CI runs, and its quick-start commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_settings_table_matches_the_settings_class():
    sys.path.insert(0, str(ROOT / "scripts"))
    from settings_table import END, START, table

    documented = README.split(START)[1].split(END)[0].strip()
    assert documented == table(), "run: python scripts/settings_table.py --write"


def test_ci_runs_the_readme_test_command():
    assert "python -m pytest" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python3? -m pytest\s*$", ci, re.M)
    assert 'pip install --quiet --disable-pip-version-check -e ".[worker,test]"' in ci


def test_quick_start_generate_command_works(tmp_path):
    out = tmp_path / "sunset.png"
    done = subprocess.run(
        [sys.executable, "app.py", "generate", "a sunset over the ocean", "-o", str(out), "--width", "512", "--height", "384"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GENERATOR": "fake"},
    )
    assert done.returncode == 0, done.stderr
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (512, 384)


def test_generate_refuses_bad_input_clearly(tmp_path):
    done = subprocess.run(
        [sys.executable, "app.py", "generate", "   ", "-o", str(tmp_path / "x.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "The prompt is empty" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_generate_with_the_tiny_wuerstchen_model_offline(tmp_path):
    out = tmp_path / "fox.png"
    done = subprocess.run(
        [sys.executable, "app.py", "generate", "a red fox in the snow", "-o", str(out),
         "--generator", "tiny", "--width", "256", "--height", "256", "--quality", "fast"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
             "TINY_MODEL_DIR": str(tmp_path / "tiny"), "GENERATOR_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (256, 256)
    assert "profile fast" in done.stdout
