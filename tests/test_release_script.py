"""scripts/release.sh, run for real by bash on a throwaway git repository: it refuses a dirty
tree, an untagged HEAD, a missing registry, cosign or signing key, each with a message that says
what to do; its dry run builds only the bot image and prints the plan; a release pushes, signs
and attests the three images by digest and writes the files the Helm step reads.

The container engine, syft and cosign are stand-ins here (CONTAINER_ENGINE and PATH): small
scripts that record their arguments and answer as the real tools do (podman's --digestfile, a
CycloneDX JSON), so these tests need no image build. The real release, with the real engine,
cosign and a local registry, is tests/test_release_registry.py (docs/release.md, section 7)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "release.sh"

FAKE_ENGINE = r"""#!/usr/bin/env bash
# A stand-in for podman: records every call, builds nothing, pushes nothing.
echo "podman $*" >> "$FAKE_LOG"
case "$1" in
    --version) echo "podman version 4.3.1" ;;
    build) exit 0 ;;
    image) echo "sha256:$(printf '%s' "${*: -1}" | sha256sum | cut -c1-64)" ;;
    tag) exit 0 ;;
    push)
        [ "$2" = --digestfile ] || { echo "expected --digestfile" >&2; exit 2; }
        printf 'sha256:%s' "$(printf 'pushed %s' "$4" | sha256sum | cut -c1-64)" > "$3" ;;
    *) echo "fake podman: unexpected $1" >&2; exit 2 ;;
esac
"""

FAKE_SYFT = r"""#!/usr/bin/env bash
echo "syft $*" >> "$FAKE_LOG"
[ "$2" = -o ] && [[ "$3" == cyclonedx-json=* ]] || { echo "fake syft: unexpected $*" >&2; exit 2; }
printf '{"bomFormat": "CycloneDX", "components": [{"name": "aiogram"}, {"name": "aiokafka"}]}' > "${3#cyclonedx-json=}"
"""

FAKE_COSIGN = r"""#!/usr/bin/env bash
echo "cosign $*" >> "$FAKE_LOG"
"""


@dataclass
class Repo:
    path: Path
    bin: Path
    log: Path

    def git(self, *args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=self.path, check=True, capture_output=True
        )

    def release(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        base = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.path.parent),
            "FAKE_LOG": str(self.log),
            "CONTAINER_ENGINE": str(self.bin / "podman"),
        }
        return subprocess.run(
            ["bash", "scripts/release.sh", *args],
            cwd=self.path,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def _tool(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)


def make_repo(tmp_path: Path) -> Repo:
    """A git repository holding the release script and a Dockerfile, one commit, no tag; stand-in
    engine and syft (not cosign) on PATH."""
    path = tmp_path / "src"
    (path / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, path / "scripts" / "release.sh")
    (path / "Dockerfile").write_text("FROM scratch AS bot\n")
    (path / ".gitignore").write_text("/dist/\n/.cache/\n")
    folder = tmp_path / "bin"
    folder.mkdir()
    _tool(folder, "podman", FAKE_ENGINE)
    _tool(folder, "syft", FAKE_SYFT)
    made = Repo(path=path, bin=folder, log=tmp_path / "calls.log")
    made.git("init", "-q", "-b", "main")
    made.git("add", "-A")
    made.git("commit", "-q", "-m", "release me")
    return made


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


def test_an_untagged_head_is_refused(repo: Repo) -> None:
    done = repo.release("--dry-run", "--skip-tests")
    assert done.returncode == 1
    assert "has no tag: tag the commit to release" in done.stderr
    assert repo.calls() == []  # nothing built


@pytest.mark.parametrize("change", ["modified", "untracked", "staged"])
def test_a_dirty_tree_is_refused(repo: Repo, change: str) -> None:
    repo.git("tag", "v1.0.0")
    if change == "modified":
        (repo.path / "Dockerfile").write_text("FROM scratch AS bot\nLABEL x=y\n")
    elif change == "untracked":
        (repo.path / "notes.txt").write_text("local file\n")
    else:
        (repo.path / "new.txt").write_text("staged\n")
        repo.git("add", "new.txt")
    done = repo.release("--dry-run", "--skip-tests")
    assert done.returncode == 1
    assert "the work tree is not clean" in done.stderr
    assert repo.calls() == []


def test_the_dry_run_builds_the_bot_only_and_prints_the_plan(repo: Repo) -> None:
    repo.git("tag", "v1.2.3")
    done = repo.release("--dry-run", "--skip-tests", REGISTRY="acme.cr.cloud.ru/p2p")
    assert done.returncode == 0, done.stderr
    builds = [c for c in repo.calls() if c.startswith("podman build")]
    assert len(builds) == 1
    assert "--target bot -t localhost/prompt2pic-bot:1.2.3" in builds[0]
    assert "--format docker --layers=false" in builds[0]
    assert not [c for c in repo.calls() if c.startswith(("podman push", "cosign"))]
    assert (
        repo.calls().count(
            "syft localhost/prompt2pic-bot:1.2.3 -o cyclonedx-json=" + str(repo.path / "dist/release/sbom-bot.cdx.json")
        )
        == 1
    )
    assert (repo.path / "dist/release/sbom-bot.cdx.json").exists()
    assert "tests: SKIPPED (--skip-tests)" in done.stdout
    for target in ("bot", "worker-cpu", "worker-cuda"):
        assert (
            f"push  localhost/prompt2pic-{target}:1.2.3 -> acme.cr.cloud.ru/p2p/prompt2pic-{target}:1.2.3"
            in done.stdout
        )
        assert (
            f"sign  cosign sign --yes <key or keyless> acme.cr.cloud.ru/p2p/prompt2pic-{target}@<digest" in done.stdout
        )
    assert not (repo.path / "dist/release/release-digests.env").exists()


def test_the_tests_run_first_and_a_failure_stops_the_release(repo: Repo) -> None:
    repo.git("tag", "v1.2.3")
    done = repo.release("--dry-run", P2P_RELEASE_TEST_CMD="echo running the suite; exit 3")
    assert done.returncode == 1
    assert "running the suite" in done.stdout
    assert "the tests failed" in done.stderr
    assert repo.calls() == ["podman --version"]  # the tools are checked first; nothing is built


@pytest.mark.parametrize(
    ("env", "with_cosign", "message"),
    [
        ({}, True, "REGISTRY is not set"),
        ({"REGISTRY": "acme.cr.cloud.ru/p2p", "COSIGN_KEYLESS": "1"}, False, "cosign is not installed"),
        ({"REGISTRY": "acme.cr.cloud.ru/p2p"}, True, "no signing identity: set COSIGN_KEY"),
        (
            {"REGISTRY": "acme.cr.cloud.ru/p2p", "COSIGN_KEY": "/nowhere/cosign.key", "COSIGN_PASSWORD": ""},
            True,
            "neither a readable key file",
        ),
        (
            {"REGISTRY": "r", "CONTAINER_ENGINE": "/nowhere/podman", "COSIGN_KEYLESS": "1"},
            True,
            "CONTAINER_ENGINE=/nowhere/podman is not an executable",
        ),
    ],
)  # fmt: skip
def test_a_missing_tool_or_setting_stops_it_by_name(
    repo: Repo, env: dict[str, str], with_cosign: bool, message: str
) -> None:
    assert shutil.which("cosign", path="/usr/bin:/bin") is None, "a real cosign on /usr/bin would hide the stand-in"
    repo.git("tag", "v1.2.3")
    if with_cosign:
        _tool(repo.bin, "cosign", FAKE_COSIGN)
    done = repo.release("--skip-tests", **env)
    assert done.returncode == 1
    assert message in done.stderr
    assert not [c for c in repo.calls() if c.startswith(("podman build", "podman push", "cosign"))]


def release_with_stand_ins(repo: Repo, key_file: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """A whole release with the stand-ins; returns the run and the digests the pushes gave."""
    _tool(repo.bin, "cosign", FAKE_COSIGN)
    repo.git("tag", "v2.0.0")
    key_file.write_text("encrypted cosign key\n")
    done = repo.release(
        "--skip-tests", REGISTRY="acme.cr.cloud.ru/p2p/", COSIGN_KEY=str(key_file), COSIGN_PASSWORD="pw"
    )
    pushed = {
        target: "sha256:"
        + hashlib.sha256(f"pushed acme.cr.cloud.ru/p2p/prompt2pic-{target}:2.0.0".encode()).hexdigest()
        for target in ("bot", "worker-cpu", "worker-cuda")
    }
    return done, pushed


def test_a_release_pushes_signs_and_attests_each_image_by_digest(repo: Repo, tmp_path: Path) -> None:
    key = tmp_path / "cosign.key"
    done, pushed = release_with_stand_ins(repo, key)
    assert done.returncode == 0, done.stderr
    calls = repo.calls()
    assert len([c for c in calls if c.startswith("podman build")]) == 3
    for target, digest in pushed.items():
        pinned = f"acme.cr.cloud.ru/p2p/prompt2pic-{target}@{digest}"
        assert f"cosign sign --yes --key {key} {pinned}" in calls
        sbom = repo.path / f"dist/release/sbom-{target}.cdx.json"
        assert f"cosign attest --yes --key {key} --type cyclonedx --predicate {sbom} {pinned}" in calls
        # Pushed before it is signed: the signature goes to the digest the registry reported.
        assert calls.index(f"cosign sign --yes --key {key} {pinned}") > next(
            i for i, c in enumerate(calls) if c.startswith("podman push") and f"prompt2pic-{target}:2.0.0" in c
        )
    env = dict(line.split("=", 1) for line in (repo.path / "dist/release/release-digests.env").read_text().splitlines())
    assert env["RELEASE_VERSION"] == "2.0.0"
    assert env["REGISTRY"] == "acme.cr.cloud.ru/p2p"
    assert env["BOT_DIGEST"] == pushed["bot"]
    assert env["WORKER_CUDA_IMAGE"] == f"acme.cr.cloud.ru/p2p/prompt2pic-worker-cuda@{pushed['worker-cuda']}"
    for digest in pushed.values():
        assert digest in done.stdout


def test_images_releases_only_those_and_tlog_upload_can_be_turned_off(repo: Repo, tmp_path: Path) -> None:
    """--images bot: one build, one push, one signature; the values file pins only the bot, so the
    chart keeps the tag for the others. COSIGN_TLOG_UPLOAD=false reaches cosign as --tlog-upload=false."""
    _tool(repo.bin, "cosign", FAKE_COSIGN)
    repo.git("tag", "v2.0.0")
    key = tmp_path / "cosign.key"
    key.write_text("encrypted cosign key\n")
    done = repo.release(
        "--skip-tests",
        "--images",
        "bot",
        REGISTRY="acme.cr.cloud.ru/p2p",
        COSIGN_KEY=str(key),
        COSIGN_PASSWORD="pw",
        COSIGN_TLOG_UPLOAD="false",
    )
    assert done.returncode == 0, done.stderr
    calls = repo.calls()
    assert [c for c in calls if c.startswith("podman build")] == [
        next(c for c in calls if c.startswith("podman build --target bot "))
    ]
    assert len([c for c in calls if c.startswith("podman push")]) == 1
    (sign,) = [c for c in calls if c.startswith("cosign sign")]
    assert f"--key {key} --tlog-upload=false acme.cr.cloud.ru/p2p/prompt2pic-bot@sha256:" in sign
    values = yaml.safe_load((repo.path / "dist/release/release-values.yaml").read_text())
    assert set(values) == {"image", "bot"} and values["bot"]["image"]["digest"].startswith("sha256:")


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--images", "bot,worker-gpu"], {}, "--images: unknown image 'worker-gpu'"),
        ([], {"COSIGN_TLOG_UPLOAD": "no"}, "COSIGN_TLOG_UPLOAD must be true or false"),
    ],
)
def test_a_bad_image_list_or_tlog_setting_is_refused(
    repo: Repo, tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    _tool(repo.bin, "cosign", FAKE_COSIGN)
    repo.git("tag", "v2.0.0")
    key = tmp_path / "cosign.key"
    key.write_text("encrypted cosign key\n")
    done = repo.release(
        "--skip-tests", *args, REGISTRY="acme.cr.cloud.ru/p2p", COSIGN_KEY=str(key), COSIGN_PASSWORD="pw", **env
    )
    assert done.returncode == 1
    assert expected in done.stderr
    assert not [c for c in repo.calls() if c.startswith("podman build")]  # refused before any build


def test_the_signing_password_and_key_never_reach_a_command_line(repo: Repo, tmp_path: Path) -> None:
    _tool(repo.bin, "cosign", FAKE_COSIGN)
    repo.git("tag", "v2.0.0")
    pem = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nc2VjcmV0\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    done = repo.release("--skip-tests", REGISTRY="acme.cr.cloud.ru/p2p", COSIGN_KEY=pem, COSIGN_PASSWORD="hunter2")
    assert done.returncode == 0, done.stderr
    signs = [c for c in repo.calls() if c.startswith("cosign sign")]
    assert len(signs) == 3 and all("--key env://COSIGN_KEY" in c for c in signs)
    assert "c2VjcmV0" not in repo.log.read_text() + done.stdout + done.stderr
    assert "hunter2" not in repo.log.read_text() + done.stdout + done.stderr


def test_release_sh_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (apt-get install shellcheck; .ci/run installs it)"
    done = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, env={**os.environ})
    assert done.returncode == 0, done.stdout


FAKE_DOCKER = r"""#!/usr/bin/env bash
# A stand-in for the docker CLI: `push` prints nothing useful, the digest is read from RepoDigests.
echo "docker $*" >> "$FAKE_LOG"
case "$1" in
    --version) echo "Docker version 27.3.1, build ce12230" ;;
    build | tag | push) exit 0 ;;
    image)
        ref="${*: -1}"
        case "$*" in
            *RepoDigests*) echo "${ref%:*}@sha256:$(printf 'pushed %s' "$ref" | sha256sum | cut -c1-64)" ;;
            *) echo "sha256:$(printf '%s' "$ref" | sha256sum | cut -c1-64)" ;;
        esac ;;
    *) echo "fake docker: unexpected $1" >&2; exit 2 ;;
esac
"""


def test_with_docker_the_digest_comes_from_repo_digests(repo: Repo) -> None:
    _tool(repo.bin, "docker", FAKE_DOCKER)
    _tool(repo.bin, "cosign", FAKE_COSIGN)
    repo.git("tag", "v3.0.0")
    done = repo.release(
        "--skip-tests", REGISTRY="acme.cr.cloud.ru/p2p", COSIGN_KEYLESS="1", CONTAINER_ENGINE=str(repo.bin / "docker")
    )
    assert done.returncode == 0, done.stderr
    builds = [c for c in repo.calls() if c.startswith("docker build")]
    assert len(builds) == 3 and not any("--layers=false" in c for c in builds)  # podman-only flags
    digest = "sha256:" + hashlib.sha256(b"pushed acme.cr.cloud.ru/p2p/prompt2pic-bot:3.0.0").hexdigest()
    # Keyless: no --key, cosign takes the CI's OIDC identity.
    assert f"cosign sign --yes acme.cr.cloud.ru/p2p/prompt2pic-bot@{digest}" in repo.calls()
    assert f"BOT_DIGEST={digest}" in (repo.path / "dist/release/release-digests.env").read_text()


def test_keyless_with_the_cis_token_keeps_the_token_off_the_command_line(repo: Repo) -> None:
    _tool(repo.bin, "cosign", FAKE_COSIGN + 'echo "token seen by cosign: ${SIGSTORE_ID_TOKEN:+yes}" >> "$FAKE_LOG"\n')
    repo.git("tag", "v2.0.0")
    done = repo.release("--skip-tests", REGISTRY="acme.cr.cloud.ru/p2p", SIGSTORE_ID_TOKEN="eyJ.oidc-token.sig")
    assert done.returncode == 0, done.stderr
    calls = repo.calls()
    signs = [c for c in calls if c.startswith("cosign sign")]
    assert len(signs) == 3 and not any("--key" in c for c in signs)
    assert calls.count("token seen by cosign: yes") == 6  # three signatures, three attestations
    assert "eyJ.oidc-token.sig" not in repo.log.read_text() + done.stdout + done.stderr
