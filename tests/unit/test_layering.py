"""The layers import only what they are allowed to (an allow-list: a new import fails here until
someone decides it and adds it below), no module of the project takes part in an import cycle,
and the bot role never loads torch.

- ``domain/``: the standard library and pydantic; nothing of the adapters, the root or a framework.
- ``adapters/<tech>/``: the standard library, the domain, its own technology, and the few other
  adapters it is built on (named per adapter); never ``config`` or ``app``.
- ``config/`` (the composition root) and ``app.py``: anything.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}

DOMAIN_ALLOWED = {"domain", "pydantic"}

# Every adapter may use tenacity for its retries with backoff (the calls to a service).
ADAPTERS_SHARED = {"domain", "tenacity"}
# What else each adapter may import: its technology, and the adapters it is built on (by their
# package name, ``adapters.<tech>``). An adapter imports its own modules as ``adapters.<itself>``.
ADAPTERS_ALLOWED: dict[str, set[str]] = {
    "embedded": {"PIL", "opentelemetry"},  # the placeholder's drawing; the memory queue carries trace context
    "http": {"aiohttp"},
    "huggingface": {"huggingface_hub", "psutil", "torch"},
    "kafka": {"aiokafka", "opentelemetry"},  # trace context in the record headers
    "marian": {"huggingface_hub", "sentencepiece", "torch", "transformers", "adapters.huggingface"},
    "nudenet": {"nudenet", "onnxruntime", "cv2", "numpy"},
    "otel": {"opentelemetry", "prometheus_client", "psutil"},
    "postgres": {"asyncpg", "adapters.sql"},
    "s3": {"aioboto3", "aiohttp", "botocore"},
    "snowball": {"snowballstemmer"},
    "sql": set(),  # the SQL the two database adapters share (plain text: the standard library)
    "sqlite": {"adapters.sql"},
    "telegram": {"aiogram", "aiohttp", "fluent", "adapters.http"},
    "wuerstchen": {"PIL", "diffusers", "huggingface_hub", "torch", "transformers", "adapters.huggingface"},
    # OpenVINO runs the Würstchen pipelines with their models converted: built on the torch adapter.
    "openvino": {
        "openvino",
        "nncf",
        "numpy",
        "diffusers",
        "torch",
        "transformers",
        "adapters.huggingface",
        "adapters.wuerstchen",
    },
}

# Import cycles owed a fix (each must still exist: a fixed one is struck off here, so the list
# can only shrink). None today: the last one (the bot module and its error handler) is gone.
KNOWN_CYCLES: set[frozenset[str]] = set()


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (a function's own imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def allowed(module: str, names: set[str]) -> bool:
    """``module`` is the standard library's, or one of ``names`` (a top-level package, or an
    ``adapters.<tech>`` package) or inside one."""
    root = module.split(".")[0]
    if root in STDLIB or root in names:
        return True
    return root == "adapters" and ".".join(module.split(".")[:2]) in names


def offenders(folder: Path, names: set[str]) -> dict[str, list[str]]:
    out = {}
    for path in sorted(folder.rglob("*.py")):
        bad = sorted(m for m in imported_modules(path) if not allowed(m, names))
        if bad:
            out[str(path.relative_to(ROOT))] = bad
    return out


def test_the_domain_imports_only_pydantic_and_the_standard_library():
    assert list((ROOT / "domain").rglob("*.py"))
    assert offenders(ROOT / "domain", DOMAIN_ALLOWED) == {}


def test_each_adapter_imports_only_the_domain_its_technology_and_the_adapters_it_is_built_on():
    folders = {p.name for p in (ROOT / "adapters").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(ADAPTERS_ALLOWED), "a new adapter: decide what it may import, in ADAPTERS_ALLOWED"
    found = {}
    for name, extra in ADAPTERS_ALLOWED.items():
        found |= offenders(ROOT / "adapters" / name, ADAPTERS_SHARED | extra | {f"adapters.{name}"})
    assert found == {}


def test_the_allow_list_refuses_what_it_does_not_name():
    """The check itself: a framework in the domain, the root in an adapter, another adapter
    not named, are each refused; the standard library and the named ones pass."""
    assert not allowed("aiogram.types", DOMAIN_ALLOWED)
    assert not allowed("tenacity", DOMAIN_ALLOWED)
    assert not allowed("config.settings", ADAPTERS_SHARED | ADAPTERS_ALLOWED["s3"])
    assert not allowed("adapters.kafka.queue", ADAPTERS_SHARED | ADAPTERS_ALLOWED["telegram"] | {"adapters.telegram"})
    assert allowed("adapters.http.server", ADAPTERS_ALLOWED["telegram"])
    assert allowed("collections.abc", DOMAIN_ALLOWED) and allowed("pydantic.fields", DOMAIN_ALLOWED)


def import_cycles() -> set[frozenset[str]]:
    """The modules of each import cycle among the project's packages (imports inside functions
    and under ``TYPE_CHECKING`` count: either makes the modules depend on each other), found
    with grimp: a module that imports one from which a chain of imports leads back to it."""
    graph = grimp.build_graph("domain", "adapters", "config", cache_dir=None)
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.add(frozenset(chain))
    return cycles


def test_no_import_cycle_in_the_project():
    cycles = import_cycles()
    assert cycles - KNOWN_CYCLES == set(), "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)
    assert cycles >= KNOWN_CYCLES, f"fixed, strike off KNOWN_CYCLES: {sorted(map(sorted, KNOWN_CYCLES - cycles))}"


def test_the_cycle_search_finds_a_cycle(tmp_path, monkeypatch):
    """The search itself, on two throwaway packages that import each other through a third module."""
    for name, body in {
        "p2p_cycle_a/__init__.py": "",
        "p2p_cycle_a/one.py": "from p2p_cycle_a import two\n",
        "p2p_cycle_a/two.py": "def f():\n    from p2p_cycle_b import three\n",
        "p2p_cycle_b/__init__.py": "",
        "p2p_cycle_b/three.py": "import p2p_cycle_a.one\n",
    }.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("p2p_cycle_a", "p2p_cycle_b", cache_dir=None)
    chain = graph.find_shortest_chain(importer="p2p_cycle_a.two", imported="p2p_cycle_a.one")
    assert chain == ("p2p_cycle_a.two", "p2p_cycle_b.three", "p2p_cycle_a.one")


def test_importing_the_domain_loads_no_framework():
    """What importing the domain loads beyond what the interpreter had loaded: the standard
    library, pydantic and pydantic's own dependencies only."""
    pydantic_needs = ("pydantic_core", "typing_extensions", "annotated_types", "typing_inspection")
    code = (
        "import sys; before = set(sys.modules);"
        "import domain.use_cases, domain.codec, domain.quality, domain.ports, domain.translation, domain.retry;"
        f"allowed = {sorted(DOMAIN_ALLOWED | set(pydantic_needs))!r};"
        # _sysconfigdata_*: the standard library's sysconfig data, named after the platform
        "roots = {m.split('.')[0] for m in set(sys.modules) - before if not m.startswith('_sysconfigdata_')};"
        "print(','.join(sorted(r for r in roots if r not in sys.stdlib_module_names and r not in allowed)))"
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
    name, loaded = [*out.stdout.splitlines(), ""][:2]
    assert name == "IdentityTranslator" and loaded == ""
