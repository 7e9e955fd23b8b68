"""The helpers of scripts/container_check.sh that read docker-compose.yml (the build and run checks
themselves need Podman and run in CI through .ci/run, not here)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def helper():
    spec = importlib.util.spec_from_file_location(
        "container_prompt_check", ROOT / "scripts" / "container_prompt_check.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["container_prompt_check"] = module
    spec.loader.exec_module(module)
    return module


def test_bot_runs_with_the_compose_files_hardening():
    flags = helper().hardening("bot", volume_prefix="run1")
    pairs = list(pairwise(flags))
    assert "--init" in flags and "--read-only" in flags
    assert ("--tmpfs", "/tmp") in pairs
    assert ("--cap-drop", "ALL") in pairs
    assert ("--security-opt", "no-new-privileges") in pairs
    assert ("-v", "run1-bot-data:/app/data") in pairs  # a volume of the run's own, never the real one


def test_worker_hardening_and_grace_periods():
    module = helper()
    flags = module.hardening("worker", volume_prefix="run1")
    assert ("-v", "run1-model-cache:/cache") in list(pairwise(flags))
    assert "--read-only" in flags  # the compose file asks it of workers too (since the least-privilege change)
    # podman 4.3 refuses uid=/gid= tmpfs options; U gives the tmpfs to the container's user instead.
    assert ("--tmpfs", "/app/data:mode=0700,U") in list(pairwise(flags))
    assert module.grace_s("bot") == 90
    assert module.grace_s("worker") == 210  # SHUTDOWN_GRACE_S 180 s for one CPU batch, + 30 s


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("read_only", "read_only: true"),
        ("cap_drop", "cap_drop: [ALL]"),
        ("security_opt", "no-new-privileges"),
        ("init", "init: true"),
    ],
)
def test_a_service_without_its_hardening_fails_the_check(tmp_path, monkeypatch, drop, expected):
    module = helper()
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    del data["services"]["bot"][drop]
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(module, "COMPOSE", broken)
    with pytest.raises(module.CheckFailed, match=expected.replace("[", r"\[").replace("]", r"\]")):
        module.hardening("bot")


def test_durations_as_compose_writes_them(tmp_path, monkeypatch):
    module = helper()
    compose = tmp_path / "docker-compose.yml"
    monkeypatch.setattr(module, "COMPOSE", compose)
    for value, seconds in (("90s", 90), ("1m30s", 90), ("2m", 120), ("1h", 3600)):
        compose.write_text(yaml.safe_dump({"services": {"x": {"stop_grace_period": value}}}))
        assert module.grace_s("x") == seconds
    compose.write_text(yaml.safe_dump({"services": {"x": {"stop_grace_period": "soon"}}}))
    with pytest.raises(module.CheckFailed, match="soon"):
        module.grace_s("x")


def test_the_check_script_parses_and_ci_runs_it():
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "container_check.sh")]).returncode == 0
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci and "\nbash scripts/container_check.sh\n" in ci


def test_the_check_builds_the_cpu_worker_and_runs_the_tiny_model_in_it():
    script = (ROOT / "scripts" / "container_check.sh").read_text()
    assert "--target worker-cpu" in script and "TORCH_CPU_INDEX_URL=$torch_index" in script
    assert '--worker-image "$worker_cpu_image" --generator tiny' in script
    assert 'podman rmi -f "$worker_cpu_image"' in script  # several GB: gone before the test suite runs


def test_the_tiny_model_is_built_on_the_workers_cache_volume():
    module = helper()
    flags = module.hardening("worker", volume_prefix="run1")
    volumes = [target for flag, target in pairwise(flags) if flag == "-v"]
    tiny = module.env(**module.TINY_ENV["tiny"])  # the worker's -e flags
    tiny_env = dict(value.split("=", 1) for flag, value in pairwise(tiny) if flag == "-e")
    cache = next(volume.split(":", 1)[1] for volume in volumes if volume.startswith("run1-model-cache:"))
    for setting in ("TINY_MODEL_DIR", "TINY_TRANSLATION_MODEL_DIR"):
        assert tiny_env[setting].startswith(cache + "/"), setting  # not the read-only root, not a tmpfs
    assert tiny_env["HF_HUB_OFFLINE"] == "1"


def dockerfile_torch_check(index_url: str) -> subprocess.CompletedProcess:
    """worker-cpu's torch check from the Dockerfile, run with this machine's torch."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", "")
    stage = dockerfile.split("AS worker-cpu-venv", 1)[1].split("\nFROM ", 1)[0]
    version = re.search(r"ARG TORCH_VERSION=(\S+)", stage).group(1)
    code = re.search(r'/opt/venv/bin/python -c "(.+?)"\n', stage).group(1)
    code = code.replace("${TORCH_VERSION}", version).replace("${TORCH_CPU_INDEX_URL}", index_url)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize("index_url", ["pypi", ""])
def test_worker_cpu_accepts_pypis_torch_which_runs_on_the_cpu(index_url):
    # This machine's torch is PyPI's (the CUDA build where it has one) and computes on its CPU.
    result = dockerfile_torch_check(index_url)
    assert result.returncode == 0, result.stderr


def test_worker_cpu_refuses_a_cuda_torch_from_the_cpu_index():
    import torch

    result = dockerfile_torch_check("https://download.pytorch.org/whl/cpu")
    if torch.version.cuda:  # PyPI's Linux torch: a wrong index for the CPU-only image
        assert result.returncode != 0 and "AssertionError" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
