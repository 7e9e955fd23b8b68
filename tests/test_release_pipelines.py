"""The release pipelines (.github/workflows/release.yml, .gitlab-ci.yml) validated offline against
the schemas check-jsonschema vendors (GitHub workflows, GitLab CI), and held to what
docs/release.md promises: tags only, the tests before the release, scripts/release.sh, keyless
signing where the CI offers OIDC, and a deploy by digest behind a manual approval that rolls back
by itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / ".github" / "workflows" / "release.yml"
GITLAB = ROOT / ".gitlab-ci.yml"


@pytest.mark.parametrize(("path", "schema"), [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")])
def test_the_pipeline_file_follows_its_schema(path: Path, schema: str) -> None:
    tool = shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is not installed (the test extra)"
    done = subprocess.run([tool, "--builtin-schema", schema, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _helm_upgrade(script: str) -> None:
    assert "helm upgrade --install p2p deploy/helm/prompt2pic" in script
    assert "-f dist/release/release-values.yaml" in script  # the digests the release pushed
    assert "--atomic --wait" in script


def test_github_releases_tags_only_and_deploys_after_approval() -> None:
    flow: dict[Any, Any] = yaml.safe_load(GITHUB.read_text())
    triggers = flow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers == {"push": {"tags": ["v*"]}}
    assert flow["permissions"] == {"contents": "read"}
    jobs = flow["jobs"]
    assert "bash .ci/run" in jobs["test"]["steps"][-1]["run"]
    release = jobs["release"]
    assert release["needs"] == "test"
    assert release["permissions"]["id-token"] == "write"
    (step,) = [s for s in release["steps"] if "scripts/release.sh" in s.get("run", "")]
    assert step["env"]["COSIGN_KEY"] == "${{ secrets.COSIGN_KEY }}"  # from the secret store only
    assert step["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    deploy = jobs["deploy-production"]
    assert deploy["needs"] == "release" and deploy["environment"] == "production"
    (helm_step,) = [s for s in deploy["steps"] if "helm upgrade" in s.get("run", "")]
    assert helm_step["env"]["KUBECONFIG_CONTENT"] == "${{ secrets.KUBECONFIG }}"
    _helm_upgrade(helm_step["run"])


def test_gitlab_releases_protected_tags_only_and_deploys_by_hand() -> None:
    ci: dict[str, Any] = yaml.safe_load(GITLAB.read_text())
    (rule,) = ci["workflow"]["rules"]
    assert "$CI_COMMIT_TAG" in rule["if"] and '$CI_COMMIT_REF_PROTECTED == "true"' in rule["if"]
    assert ci["stages"] == ["test", "release", "deploy"]
    assert ci["test"]["script"] == ["bash .ci/run"]
    assert ci["release"]["id_tokens"]["SIGSTORE_ID_TOKEN"]["aud"] == "sigstore"
    assert ci["release"]["script"] == ["bash scripts/release.sh --skip-tests"]
    deploy = ci["deploy-production"]
    assert deploy["when"] == "manual" and deploy["allow_failure"] is False
    assert deploy["environment"]["name"] == "production"
    _helm_upgrade(" ".join(deploy["script"]))
