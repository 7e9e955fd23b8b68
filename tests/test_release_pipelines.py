"""The release pipelines (.github/workflows/release.yml, .gitlab-ci.yml) validated offline: the
GitHub workflow by actionlint (built from the Go module proxy by tools/go_tool.py; it runs
shellcheck on every `run:` script) and against the schema check-jsonschema vendors, the GitLab file
against GitLab's own CI schema, vendored in tests/schemas/gitlab-ci/ and read by the jsonschema
package. Each check is shown to catch a broken copy of the file, so a pass means something. The
files are also held to what docs/release.md promises: tags only, the tests before the release,
scripts/release.sh, keyless signing where the CI offers OIDC, and a deploy by digest behind a
manual approval that rolls back by itself."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.fixtures.go_tools import go_tool_binary

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / ".github" / "workflows" / "release.yml"
GITLAB = ROOT / ".gitlab-ci.yml"
GITLAB_SCHEMA = ROOT / "tests" / "schemas" / "gitlab-ci" / "ci.json"


def test_the_github_workflow_follows_its_schema() -> None:
    tool = shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is not installed (the test extra)"
    done = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(GITHUB)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (apt-get install shellcheck; .ci/run does)"
    return subprocess.run(
        [
            str(go_tool_binary("actionlint")),
            "-no-color",
            "-oneline",
            "-shellcheck",
            shellcheck,
            "-pyflakes",
            "",
            str(workflow),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_actionlint_passes_the_github_workflow() -> None:
    done = actionlint(GITHUB)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda text: text.replace("needs: release", "needs: relase"), 'needs job "relase" which does not exist'),
        (
            lambda text: text.replace("${{ secrets.COSIGN_KEY }}", "${{ secret.COSIGN_KEY }}"),
            'undefined variable "secret"',
        ),
    ],
    ids=["needs-a-missing-job", "an-unknown-context"],
)
def test_actionlint_catches_a_broken_workflow(tmp_path: Path, break_it: Any, expected: str) -> None:
    broken_text = break_it(GITHUB.read_text())
    assert broken_text != GITHUB.read_text(), "the breakage no longer applies: update this test"
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    broken = folder / "release.yml"
    broken.write_text(broken_text)
    done = actionlint(broken)
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stdout


def gitlab_errors(config: dict[str, Any]) -> list[str]:
    """The GitLab CI schema's complaints about ``config`` (GitLab's own schema, draft 7)."""
    validator = jsonschema.Draft7Validator(json.loads(GITLAB_SCHEMA.read_text()))
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(config)]


def test_the_gitlab_pipeline_follows_gitlabs_schema() -> None:
    assert gitlab_errors(yaml.safe_load(GITLAB.read_text())) == []


@pytest.mark.parametrize(
    ("job", "key", "value", "expected"),
    [
        ("deploy-production", "when", "sometimes", "'sometimes' is not one of"),
        ("release", "id_tokens", {"SIGSTORE_ID_TOKEN": {"audience": "sigstore"}}, "'aud' is a required property"),
    ],
    ids=["an-unknown-when", "an-id-token-without-aud"],
)
def test_the_gitlab_schema_catches_a_broken_pipeline(job: str, key: str, value: Any, expected: str) -> None:
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(GITLAB.read_text()))
    config[job][key] = value
    errors = gitlab_errors(config)
    assert any(expected in error for error in errors), errors


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
