"""The Helm chart rendered by the real ``helm`` binary (tools/helm_tool.py builds it once from
the Go module proxy into .cache/helm; CI fetches it before pytest). No helm, no test: the fixture
fails, it never skips."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "prompt2pic"
RELEASE = "p2p"

sys.path.insert(0, str(ROOT / "tools"))
import helm_tool  # noqa: E402

# The value sets the issue names (default, GPU, scale-to-zero, cloud.ru) and GPU + scale-to-zero.
VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "gpu": ["values-gpu.yaml"],
    "scale-to-zero": ["values-scale-to-zero.yaml"],
    "gpu-scale-to-zero": ["values-gpu.yaml", "values-scale-to-zero.yaml"],
    "cloudru": ["values-cloudru.yaml"],
}
# What an operator passes at install time: the chart refuses an empty webhook host and the
# placeholders of values-cloudru.yaml (<registry>, <broker>, <your bot host>).
SITE_SETS: list[str] = ["bot.webhook.host=p2p-bot.acme-lab.ru"]
CLOUDRU_SETS: list[str] = ["image.registry=acme.cr.cloud.ru", "kafka.bootstrapServers=rc1a-kafka.acme.internal:9094"]


def site_sets(files: list[str]) -> list[str]:
    return SITE_SETS + (CLOUDRU_SETS if "values-cloudru.yaml" in files else [])


def apply_sets(values: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Simple ``--set a.b=c`` (string values) applied to ``values``, as helm does."""
    out = copy.deepcopy(values)
    for item in sets:
        path, _, value = item.partition("=")
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


# The oldest Kubernetes the chart allows (Chart.yaml kubeVersion) and the newest helm knows.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]


class HelmFailed(AssertionError):
    pass


@dataclass
class Rendered:
    docs: list[dict[str, Any]]
    text: str
    values: dict[str, Any] = field(default_factory=dict)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name_suffix: str) -> dict[str, Any]:
        found = [d for d in self.kinds(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, (
            f"expected one {kind} named *{name_suffix}, found {[d['metadata']['name'] for d in found]}"
        )
        return found[0]

    def pod_specs(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(workload, pod spec) of every Deployment."""
        return [(d, d["spec"]["template"]["spec"]) for d in self.kinds("Deployment")]

    def containers(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (workload, c)
            for workload, spec in self.pod_specs()
            for c in spec.get("initContainers", []) + spec["containers"]
        ]


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of values files: maps merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def effective_values(files: list[str]) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name in files:
        values = deep_merge(values, yaml.safe_load((CHART / name).read_text()) or {})
    return apply_sets(values, site_sets(files))


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> env entry; a name twice is an error."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in container.get("env", []):
        assert entry["name"] not in seen, f"{container['name']}: {entry['name']} is set twice"
        seen[entry["name"]] = entry
    return seen


class Helm:
    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self._cache: dict[tuple[Any, ...], Rendered] = {}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=120)

    @staticmethod
    def _args(files: list[str], sets: list[str], kube: str) -> list[str]:
        args = ["--kube-version", kube]
        for name in files:
            args += ["-f", str(CHART / name)]
        for item in [*site_sets(files), *sets]:  # the test's own come last and win
            args += ["--set", item]
        return args

    def template(self, files: list[str] = (), sets: list[str] = (), kube: str = KUBE_VERSIONS[0]) -> Rendered:
        key = (tuple(files), tuple(sets), kube)
        if key not in self._cache:
            done = self.run("template", RELEASE, str(CHART), *self._args(list(files), list(sets), kube))
            if done.returncode != 0:
                raise HelmFailed(f"helm template failed (exit {done.returncode}):\n{done.stderr}")
            docs = [d for d in yaml.safe_load_all(done.stdout) if d]
            self._cache[key] = Rendered(docs=docs, text=done.stdout, values=effective_values(list(files)))
        return self._cache[key]

    def refusal(self, files: list[str] = (), sets: list[str] = (), kube: str = KUBE_VERSIONS[0]) -> str:
        """helm template must fail: return its error text."""
        done = self.run("template", RELEASE, str(CHART), *self._args(list(files), list(sets), kube))
        assert done.returncode != 0, f"helm rendered what it should refuse ({files}, {sets})"
        assert not done.stdout.strip(), "a refused render must print no manifest"
        return done.stderr

    def lint(self, files: list[str] = (), kube: str = KUBE_VERSIONS[0]) -> subprocess.CompletedProcess[str]:
        return self.run("lint", "--strict", str(CHART), *self._args(list(files), [], kube))


@pytest.fixture(scope="session")
def helm() -> Helm:
    try:
        binary = helm_tool.fetch()
    except RuntimeError as exc:  # no Go toolchain, no module proxy: fail loudly, never skip
        pytest.fail(f"the helm binary could not be obtained: {exc}", pytrace=False)
    return Helm(binary)


@pytest.fixture(scope="session", params=list(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def rendered(helm: Helm, value_set: str) -> Rendered:
    return helm.template(VALUE_SETS[value_set])
