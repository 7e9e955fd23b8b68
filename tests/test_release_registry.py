"""scripts/release.sh run for real against a local OCI registry: the real engine (Podman) builds the
bot image from a tagged throwaway copy of this work tree, the real cyclonedx-bom writes its SBOM,
the real cosign (built from the Go module proxy) signs it with a throwaway key and attests the SBOM,
and go-containerregistry's registry (also built from the proxy) receives it over HTTP on 127.0.0.1.
Then, as a deployer would: the printed digest is the registry's; `cosign verify` passes with the
release's public key and fails with another key and on an unsigned image; the attested SBOM is the
one written and lists aiogram and aiokafka; the chart rendered with the release's values file runs
exactly the printed digest.

Only the bot image is released by default (`--images bot`): the worker images carry torch (several
GB from PyPI here, where the PyTorch CPU index cannot be reached) and would add many minutes to CI.
diffusers is only in the worker images ("The bot role needs only these: no torch, no diffusers",
pyproject.toml), so its presence in an SBOM is checked when P2P_RELEASE_TEST_IMAGES names a worker
image (e.g. `bot,worker-cpu`), which runs the same test on it (docs/release.md).

Needs root and Podman (.ci/run installs Podman through scripts/container_check.sh, before pytest),
debootstrap the first time (the Debian stand-in base image, cached), PyPI for the build and for
cyclonedx-bom (cached), and the Go module proxy the first time (the tools are cached). A missing
tool fails the test; nothing is skipped."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.go_tools import go_tool, go_tool_binary
from tests.helm.conftest import Helm, helm_tool

pytestmark = pytest.mark.timeout(2400)

ROOT = Path(__file__).resolve().parents[1]
TAG = "v0.0.0-regtest"
VERSION = TAG[1:]
PASSWORD = "throwaway-release-test-password"
IMAGES = [name for name in os.environ.get("P2P_RELEASE_TEST_IMAGES", "bot").split(",") if name]
COMPONENT = {"bot": "bot", "worker-cpu": "cpuWorker", "worker-cuda": "gpuWorker"}
EXPECTED_PACKAGES = {"bot": {"aiogram", "aiokafka"}}
EXPECTED_PACKAGES["worker-cpu"] = EXPECTED_PACKAGES["worker-cuda"] = {"aiogram", "aiokafka", "diffusers", "torch"}
STANDIN = "localhost/p2p-release-test-python:bookworm"
# This VM kind's Podman settings (docs/deploy.md, "Checking the images without Docker").
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], env: dict[str, str], timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, **kw)


@dataclass
class Release:
    registry: str  # host:port/path, as REGISTRY was given
    host: str  # host:port
    out: Path
    stdout: str
    digests: dict[str, str]  # image (bot, worker-cpu, ...) -> sha256:...
    cosign: Path
    env: dict[str, str]  # the environment the tools run in (Podman's and cosign's settings)
    public_key: Path
    other_public_key: Path
    seconds: float

    def repository(self, image: str) -> str:
        return f"{self.registry}/prompt2pic-{image}"

    def pinned(self, image: str) -> str:
        return f"{self.repository(image)}@{self.digests[image]}"

    def cosign_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([str(self.cosign), *args], self.env, timeout=180)

    def http(self, path: str, accept: str = "") -> tuple[dict[str, str], bytes]:
        request = urllib.request.Request(f"http://{self.host}{path}", headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return dict(answer.headers), answer.read()


def _throwaway_repo(tmp: Path) -> Path:
    """A copy of this work tree's files (tracked and new, not ignored) as one commit, tagged: the
    release script refuses anything else, and must not tag the real repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    src = tmp / "src"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, src / name)
    git = ["git", "-c", "user.name=release-test", "-c", "user.email=release-test@prompt2pic.local"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "release test"], ["tag", TAG]):
        subprocess.run([*git, *args], cwd=src, check=True, capture_output=True)
    return src


def _registry_up(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    assert os.geteuid() == 0, "the release test runs Podman as root (as CI does)"
    podman = shutil.which("podman")
    assert podman, "podman is not installed: scripts/container_check.sh installs it (.ci/run runs it before pytest)"
    cosign = go_tool_binary("cosign")
    registry_bin = go_tool_binary("oci-registry")
    tmp = tmp_path_factory.mktemp("release")

    env = {**os.environ, "PATH": f"{cosign.parent}:{os.environ['PATH']}", "COSIGN_PASSWORD": PASSWORD}
    (tmp / "containers.conf").write_text(CONTAINERS_CONF)
    port = _free_port()
    host = f"127.0.0.1:{port}"
    # Podman speaks plain HTTP only to a registry marked insecure; cosign (go-containerregistry) does
    # so to a loopback address by itself.
    (tmp / "registries.conf").write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
    env["CONTAINERS_CONF"] = str(tmp / "containers.conf")
    env["CONTAINERS_REGISTRIES_CONF"] = str(tmp / "registries.conf")
    env["HOME"] = str(tmp / "home")  # cosign's ~/.sigstore and ~/.docker stay out of the real home

    exists = _run([podman, "image", "exists", STANDIN], env)
    if exists.returncode != 0:
        made = _run(["bash", str(ROOT / "scripts" / "python_standin.sh"), STANDIN], env, timeout=900)
        assert made.returncode == 0, f"the stand-in base image:\n{made.stderr[-3000:]}"

    for name in ("keys", "other"):
        (tmp / name).mkdir()
        made = _run([str(cosign), "generate-key-pair"], env, cwd=tmp / name)
        assert made.returncode == 0, made.stderr
    assert not (tmp / "keys" / "cosign.key").read_text().startswith("-----BEGIN EC PRIVATE")  # encrypted

    log = (tmp / "registry.log").open("w")
    server = subprocess.Popen([str(registry_bin), "-port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _registry_up(host):
            assert server.poll() is None, f"the registry exited: {(tmp / 'registry.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the registry did not answer /v2/ within 30 s"
            time.sleep(0.2)

        src = _throwaway_repo(tmp)
        registry = f"{host}/prompt2pic"
        release_env = {
            **env,
            "REGISTRY": registry,
            "COSIGN_KEY": str(tmp / "keys" / "cosign.key"),
            "COSIGN_TLOG_UPLOAD": "false",  # no public transparency log offline
            "CONTAINER_ENGINE": podman,
            "PYTHON_IMAGE": STANDIN,
            # cyclonedx-bom, installed once for the image's Python, kept between runs:
            "P2P_RELEASE_CACHE": str(go_tool.tool("cosign").cache_root().parent / "release"),
        }
        if Path("/etc/ssl/certs/ca-certificates.crt").is_file():  # pip through this network's TLS interception
            release_env["P2P_BUILD_CA_BUNDLE"] = "/etc/ssl/certs/ca-certificates.crt"
        started = time.monotonic()
        done = _run(
            ["bash", "scripts/release.sh", "--skip-tests", "--images", ",".join(IMAGES), "--out", str(tmp / "out")],
            release_env,
            timeout=2000,
            cwd=src,
        )
        seconds = time.monotonic() - started
        print(f"release.sh ({','.join(IMAGES)}) took {seconds:.0f} s")
        assert done.returncode == 0, f"release.sh failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        printed = dict(
            line.split("=", 1) for line in done.stdout.splitlines() if line.split("=", 1)[0].endswith("_DIGEST")
        )
        digests = {image: printed[image.upper().replace("-", "_") + "_DIGEST"] for image in IMAGES}
        yield Release(
            registry=registry,
            host=host,
            out=tmp / "out",
            stdout=done.stdout,
            digests=digests,
            cosign=cosign,
            env=env,
            public_key=tmp / "keys" / "cosign.pub",
            other_public_key=tmp / "other" / "cosign.pub",
            seconds=seconds,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        for image in IMAGES:  # the script's local and pushed tags (the registry's copy dies with it)
            for ref in (f"localhost/prompt2pic-{image}:{VERSION}", f"{host}/prompt2pic/prompt2pic-{image}:{VERSION}"):
                _run([podman, "rmi", "-f", ref], env)


MANIFESTS = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


@pytest.mark.parametrize("image", IMAGES)
def test_the_printed_digest_is_what_the_registry_serves_for_the_tag(release: Release, image: str) -> None:
    digest = release.digests[image]
    assert digest.startswith("sha256:") and len(digest) == 71
    headers, body = release.http(f"/v2/prompt2pic/prompt2pic-{image}/manifests/{VERSION}", MANIFESTS)
    assert headers["Docker-Content-Digest"] == digest
    assert json.loads(body)["config"]["digest"].startswith("sha256:")  # an image manifest, not an error
    written = dict(line.split("=", 1) for line in (release.out / "release-digests.env").read_text().split())
    assert written[image.upper().replace("-", "_") + "_IMAGE"] == release.pinned(image)
    # The signature and the attestation sit beside the image, under cosign's tags for its digest.
    tags = json.loads(release.http(f"/v2/prompt2pic/prompt2pic-{image}/tags/list")[1])["tags"]
    assert set(tags) >= {VERSION, f"{digest.replace(':', '-')}.sig", f"{digest.replace(':', '-')}.att"}


@pytest.mark.parametrize("image", IMAGES)
def test_cosign_verify_passes_with_the_release_key_only(release: Release, image: str) -> None:
    ok = release.cosign_run(
        "verify", "--key", str(release.public_key), "--insecure-ignore-tlog=true", release.pinned(image)
    )
    assert ok.returncode == 0, ok.stderr
    (claim,) = json.loads(ok.stdout)  # one signature, as a JSON list of its claims
    assert claim["critical"]["image"]["docker-manifest-digest"] == release.digests[image]
    assert claim["critical"]["identity"]["docker-reference"] == release.repository(image)

    other = release.cosign_run(
        "verify", "--key", str(release.other_public_key), "--insecure-ignore-tlog=true", release.pinned(image)
    )
    assert other.returncode != 0
    assert "no matching signatures" in other.stderr, other.stderr


def test_cosign_verify_refuses_an_unsigned_image(release: Release) -> None:
    """A build pushed beside ours without the release script: there is nothing to verify."""
    unsigned = f"{release.registry}/prompt2pic-bot:unsigned"
    podman = shutil.which("podman") or "podman"
    assert _run([podman, "tag", STANDIN, unsigned], release.env).returncode == 0
    try:
        pushed = _run([podman, "push", unsigned], release.env)
        assert pushed.returncode == 0, pushed.stderr
        refused = release.cosign_run(
            "verify", "--key", str(release.public_key), "--insecure-ignore-tlog=true", unsigned
        )
        assert refused.returncode != 0
        assert "no signatures found" in refused.stderr, refused.stderr
    finally:
        _run([podman, "rmi", "-f", unsigned], release.env)


def _attested_sbom(release: Release, image: str, key: Path) -> subprocess.CompletedProcess[str]:
    return release.cosign_run(
        "verify-attestation",
        "--key",
        str(key),
        "--type",
        "cyclonedx",
        "--insecure-ignore-tlog=true",
        release.pinned(image),
    )


@pytest.mark.parametrize("image", IMAGES)
def test_the_signed_sbom_is_attached_and_lists_the_packages(release: Release, image: str) -> None:
    done = _attested_sbom(release, image, release.public_key)
    assert done.returncode == 0, done.stderr
    (envelope,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://cyclonedx.org/bom"
    (subject,) = statement["subject"]
    assert "sha256:" + subject["digest"]["sha256"] == release.digests[image]
    bom = statement["predicate"]
    assert bom == json.loads((release.out / f"sbom-{image}.cdx.json").read_text())  # the SBOM written
    assert bom["bomFormat"] == "CycloneDX"
    names = {component["name"].lower() for component in bom["components"]}
    assert names >= EXPECTED_PACKAGES[image], sorted(names)
    purls = {component.get("purl", "") for component in bom["components"]}
    assert any(purl.startswith("pkg:pypi/aiogram@") for purl in purls)

    assert _attested_sbom(release, image, release.other_public_key).returncode != 0


def test_the_chart_rendered_with_the_release_values_runs_exactly_those_digests(release: Release) -> None:
    values = yaml.safe_load((release.out / "release-values.yaml").read_text())
    assert values["image"] == {"registry": release.registry, "tag": VERSION}
    # The GPU worker and the CPU worker on, so all three images are in the manifests; the release's
    # values file comes last, as `helm upgrade -f` takes it in the pipelines.
    rendered = Helm(helm_tool.fetch()).template(
        ["values-gpu.yaml", str(release.out / "release-values.yaml")], ["cpuWorker.enabled=true"]
    )
    images: dict[str, set[str]] = {}  # repository name -> the images of its containers
    for _, container in rendered.containers():
        name = container["image"].rsplit("/", 1)[-1].split("@")[0].split(":")[0]
        images.setdefault(name, set()).add(container["image"])
    for image in ("bot", "worker-cpu", "worker-cuda"):
        # Not released here: the chart falls back to the registry and the release's tag.
        expected = release.pinned(image) if image in IMAGES else f"{release.repository(image)}:{VERSION}"
        assert images[f"prompt2pic-{image}"] == {expected}, images
