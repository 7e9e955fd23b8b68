"""The domain knows nothing of frameworks or adapters; the bot role never loads torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"adapters", "config", "app", "aiogram", "aiokafka", "aioboto3", "aiobotocore", "botocore",
             "boto3", "diffusers", "torch", "transformers", "aiohttp", "PIL", "opentelemetry",
             "dependency_injector", "fluent"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_domain_imports_no_framework_or_adapter():
    files = sorted((ROOT / "domain").rglob("*.py"))
    assert files
    offenders = {
        str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN)
        for f in files
        if imported_roots(f) & FORBIDDEN
    }
    assert offenders == {}


def test_importing_the_domain_loads_no_framework():
    code = (
        "import sys, domain.use_cases, domain.codec, domain.quality, domain.ports, domain.translation;"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_bot_role_does_not_import_torch_or_diffusers():
    # The bot builds the prompt filter (SubmitPrompt) but never the image check: NudeNet,
    # onnxruntime and OpenCV are the worker's.
    code = (
        "import sys, app, config.bootstrap, adapters.telegram.runtime, adapters.http.server;"
        "import adapters.telegram.results, adapters.telegram.understood;"
        "from config.bootstrap import Components; from config.settings import Settings;"
        "c = Components(Settings(_env_file=None, telegram_bot_token='123456:test', user_store='memory'), role='bot');"
        "c.queue; c.storage; c.http; c.telegram; s = c.submit;"
        "assert s.prompt_filter is not None;"
        "heavy = ('torch', 'diffusers', 'transformers', 'nudenet', 'onnxruntime', 'cv2');"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_translation_adapters_load_torch_only_when_they_run():
    """Importing the MarianMT adapter (the worker's composition root does) and the pass-through
    one that PROMPT_TRANSLATION=off and the fake generator get loads no torch or transformers."""
    code = (
        "import sys, adapters.marian.translator, adapters.marian.tiny, adapters.embedded.translator;"
        "from config.bootstrap import Components; from config.settings import Settings;"
        "c = Components(Settings()); c.prompt_translator; c.understand;"
        "print(type(c.prompt_translator).__name__);"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers'))))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENERATOR", "PROMPT_TRANSLATION"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    name, loaded = (out.stdout.splitlines() + [""])[:2]
    assert name == "IdentityTranslator" and loaded == ""
