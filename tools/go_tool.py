#!/usr/bin/env python3
"""Build the Go command-line tools the tests and CI need, once, from the Go module proxy.

    python tools/go_tool.py fetch cosign actionlint oci-registry   # build what is missing; print the paths
    python tools/go_tool.py path cosign                        # the cached binary (exit 1 when absent)
    python tools/go_tool.py list                               # the tools, their modules and versions

No package registry reachable here ships these tools as binaries, so each is built with
``go install <package>@<version>`` through the Go module proxy, with the link-time settings of the
tool's own release build where its version string depends on them. The binary lands in
``<cache>/<version>/<name>``; a second call finds it (and checks the version it reports) and does
nothing. The Go module and build caches of a build are temporary folders, removed afterwards, so
only the binary stays. A file lock makes two sessions that start at once build only once.

The cache: ``$<NAME>_CACHE_DIR`` where the tool has one (HELM_CACHE_DIR, MINIO_CACHE_DIR, as
before), else ``$GO_TOOLS_CACHE_DIR/<name>``, else ``.cache/<name>`` in the repository; .ci/run
puts them all under ~/.cache/prompt2pic. ``$<OVERRIDE>`` (HELM, MINIO_BIN, COSIGN, ...) names a
binary to use instead; it must report the pinned version. tools/helm_tool.py and
tools/minio_tool.py are thin front ends of this module for their two tools.

Cold build times on this machine kind (2 cores), measured with this script: docs/release.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def say(*parts: object) -> None:
    print("go_tool:", *parts, file=sys.stderr, flush=True)


def go_binary() -> str:
    go = os.environ.get("GO") or shutil.which("go")
    if not go and Path("/usr/local/go/bin/go").exists():  # the toolchain's usual place, off PATH
        go = "/usr/local/go/bin/go"
    if not go:
        raise RuntimeError(
            "the Go toolchain (go) is not on PATH: it is needed once to build the tools from the Go module proxy"
        )
    return go


@dataclass(frozen=True)
class GoTool:
    """One tool: where its main package is, which version, and how to tell a binary is that version."""

    name: str
    package: str  # the main package, as `go install` takes it (without @version)
    default_version: str
    version_args: tuple[str, ...]  # the arguments that make the binary print its version
    cache_env: str = ""  # a tool-specific cache variable (HELM_CACHE_DIR) that wins over GO_TOOLS_CACHE_DIR
    override_env: str = ""  # a variable naming a ready binary to use instead
    # ldflags(go, version, env) -> the -ldflags words of the tool's release build.
    ldflags: Callable[[str, str, dict[str, str]], list[str]] = field(default=lambda go, version, env: [])
    # matches(output of version_args, version) -> whether that output is of this version.
    matches: Callable[[str, str], bool] = field(default=lambda output, version: version.lstrip("v") in output)
    minutes: str = "a few"  # for the message while it builds
    # `go install pkg@version` refuses a module whose go.mod has replace directives (Kyverno's):
    # such a tool is built as the main module, from its source as the proxy serves it.
    main_module: bool = False

    @property
    def version(self) -> str:
        return os.environ.get(f"{self.name.upper().replace('-', '_')}_VERSION", self.default_version)

    @property
    def module(self) -> str:
        return self.package.split("/cmd/")[0]

    def cache_root(self) -> Path:
        specific = os.environ.get(self.cache_env) if self.cache_env else None
        if specific:
            return Path(specific).expanduser().resolve()
        shared = os.environ.get("GO_TOOLS_CACHE_DIR")
        if shared:
            return Path(shared).expanduser().resolve() / self.name
        return REPO / ".cache" / self.name

    def binary_path(self, version: str | None = None) -> Path:
        return self.cache_root() / (version or self.version) / self.name

    def reported(self, binary: Path | str) -> str:
        done = subprocess.run([str(binary), *self.version_args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(
                f"{binary} {' '.join(self.version_args)} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
            )
        return (done.stdout + done.stderr).strip()

    def is_version(self, binary: Path | str, version: str) -> bool:
        return self.matches(self.reported(binary), version)

    def fetch(self, version: str | None = None) -> Path:
        """A binary of ``version``: the override, the cached one, or one built now."""
        version = version or self.version
        override = os.environ.get(self.override_env) if self.override_env else None
        if override:
            if not self.is_version(override, version):
                raise RuntimeError(
                    f"{self.override_env}={override} is {self.name} {self.reported(override)[:200]}, not {version}"
                )
            return Path(override)
        target = self.binary_path(version)
        if target.exists() and self.is_version(target, version):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions starting at once build only once
            if target.exists() and self.is_version(target, version):
                return target
            self._build(version, target)
        return target

    def _build(self, version: str, target: Path) -> None:
        go = go_binary()
        work = Path(tempfile.mkdtemp(prefix=f"p2p-{self.name}-build-"))
        env = {
            **os.environ,
            "GOPATH": str(work / "gopath"),
            "GOMODCACHE": str(work / "mod"),
            "GOCACHE": str(work / "build"),
            "GOBIN": str(work / "bin"),
            "CGO_ENABLED": "0",
            "GOFLAGS": "-buildvcs=false -modcacherw",  # -modcacherw: the temp cache can be removed
        }
        started = time.monotonic()
        try:
            say(f"building {self.name} {version} from the Go module proxy (once; {self.minutes} minutes)")
            ldflags = " ".join(["-s", "-w", *self.ldflags(go, version, env)])
            built = work / "bin" / self.package.rsplit("/", 1)[-1]
            if self.main_module:
                source = module_source(go, self.module, version, env)
                shutil.copytree(source, work / "src")
                command = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(built)]
                command.append("./" + self.package.removeprefix(self.module + "/"))
            else:
                command = [go, "install", "-trimpath", "-ldflags", ldflags, f"{self.package}@{version}"]
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=env,
                timeout=3600,
                cwd=work / "src" if self.main_module else None,
            )
            if done.returncode != 0 or not built.exists():
                raise RuntimeError(
                    f"go install {self.package}@{version} failed (exit {done.returncode}):\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                )
            partial = target.with_name(f"{self.name}.tmp-{os.getpid()}")
            shutil.copy2(built, partial)
            partial.replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if not self.is_version(target, version):
            raise RuntimeError(f"the built {self.name} reports {self.reported(target)[:200]!r}, not {version}")
        say(f"built {self.name} {version} in {time.monotonic() - started:.0f}s: {target}")


def _download(go: str, module: str, version: str, env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True, env=env, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(f"go mod download {module}@{version} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    found: dict[str, str] = json.loads(done.stdout)
    return found


def module_go_mod(go: str, module: str, version: str, env: dict[str, str]) -> str:
    """The go.mod of ``module@version`` (downloaded into the build's module cache)."""
    return Path(_download(go, module, version, env)["GoMod"]).read_text()


def module_source(go: str, module: str, version: str, env: dict[str, str]) -> Path:
    """The source tree of ``module@version`` as the Go module proxy serves it."""
    return Path(_download(go, module, version, env)["Dir"])


def requirement(go_mod: str, module: str) -> str:
    match = re.search(rf"^\s*{re.escape(module)} (v\S+)", go_mod, re.M)
    if not match:
        raise RuntimeError(f"no {module} requirement in the go.mod")
    return match.group(1)


# --------------------------------------------------------------------------- the tools

HELM_MODULE = "helm.sh/helm/v3"


def _helm_ldflags(go: str, version: str, env: dict[str, str]) -> list[str]:
    # helm's Makefile derives the default Kubernetes version from its k8s.io/client-go requirement
    # (client-go v0.N.x belongs to Kubernetes 1.N).
    minor = requirement(module_go_mod(go, HELM_MODULE, version, env), "k8s.io/client-go").split(".")[1]
    return [
        f"-X {HELM_MODULE}/internal/version.version={version}",
        f"-X {HELM_MODULE}/internal/version.gitTreeState=clean",
        f"-X {HELM_MODULE}/pkg/lint/rules.k8sVersionMajor=1",
        f"-X {HELM_MODULE}/pkg/lint/rules.k8sVersionMinor={minor}",
        f"-X {HELM_MODULE}/pkg/chartutil.k8sVersionMajor=1",
        f"-X {HELM_MODULE}/pkg/chartutil.k8sVersionMinor={minor}",
    ]


MINIO_PSEUDO = re.compile(r"^v0\.0\.0-(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})-([0-9a-f]{12})$")


def minio_parts(version: str) -> tuple[str, str, str]:
    """(commit time as RFC 3339, the release tag MinIO's build script would derive, the commit)."""
    match = MINIO_PSEUDO.match(version)
    if not match:
        raise RuntimeError(f"{version!r} is not a pseudo-version of github.com/minio/minio (v0.0.0-<time>-<commit>)")
    y, mo, d, h, mi, s, commit = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}Z", f"DEVELOPMENT.{y}-{mo}-{d}T{h}-{mi}-{s}Z", commit


def _minio_ldflags(go: str, version: str, env: dict[str, str]) -> list[str]:
    # The settings of MinIO's buildscripts/gen-ldflags.go, with the commit time as the version.
    stamp, release_tag, commit = minio_parts(version)
    pkg = "github.com/minio/minio/cmd"
    return [
        f"-X {pkg}.Version={stamp}",
        f"-X {pkg}.CopyrightYear={stamp[:4]}",
        f"-X {pkg}.ReleaseTag={release_tag}",
        f"-X {pkg}.CommitID={commit}",
        f"-X {pkg}.ShortCommitID={commit}",
    ]


def _minio_matches(output: str, version: str) -> bool:
    match = re.search(r"commit-id=([0-9a-f]+)", output)
    return match is not None and match.group(1).startswith(minio_parts(version)[2])


def _cosign_ldflags(go: str, version: str, env: dict[str, str]) -> list[str]:
    # cosign's Makefile sets sigs.k8s.io/release-utils' version variables; without them
    # `cosign version` says "devel".
    pkg = "sigs.k8s.io/release-utils/version"
    return [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitTreeState=clean"]


def _kyverno_ldflags(go: str, version: str, env: dict[str, str]) -> list[str]:
    pkg = "github.com/kyverno/kyverno/pkg/version"
    return [f"-X {pkg}.BuildVersion={version}"]


def _actionlint_ldflags(go: str, version: str, env: dict[str, str]) -> list[str]:
    return [f"-X github.com/rhysd/actionlint.version={version}"]


TOOLS: dict[str, GoTool] = {
    tool.name: tool
    for tool in (
        GoTool(
            "helm",
            f"{HELM_MODULE}/cmd/helm",
            "v3.22.0",
            ("version", "--template", "{{.Version}}"),
            cache_env="HELM_CACHE_DIR",
            override_env="HELM",
            ldflags=_helm_ldflags,
            matches=lambda output, version: output == version,
        ),
        GoTool(
            "minio",
            "github.com/minio/minio",
            "v0.0.0-20260212201848-7aac2a2c5b7c",
            ("--version",),
            cache_env="MINIO_CACHE_DIR",
            override_env="MINIO_BIN",
            ldflags=_minio_ldflags,
            matches=_minio_matches,
            minutes="several",
        ),
        GoTool(
            "cosign",
            "github.com/sigstore/cosign/v2/cmd/cosign",
            "v2.6.5",
            ("version", "--json"),
            override_env="COSIGN",
            ldflags=_cosign_ldflags,
            matches=lambda output, version: json.loads(output).get("gitVersion") == version,
            minutes="several",
        ),
        GoTool(
            "actionlint",
            "github.com/rhysd/actionlint/cmd/actionlint",
            "v1.7.12",
            ("-version",),
            override_env="ACTIONLINT",
            ldflags=_actionlint_ldflags,
            matches=lambda output, version: output.splitlines()[0].strip() == version,
        ),
        GoTool(
            # go-containerregistry's small OCI registry (in memory, HTTP): the release test's registry.
            "oci-registry",
            "github.com/google/go-containerregistry/cmd/registry",
            "v0.22.1",
            ("--help",),
            override_env="OCI_REGISTRY_BIN",
            # It prints no version; the cached path names it, and --help proves it runs.
            matches=lambda output, version: "registry" in output,
        ),
        GoTool(
            # Not built by .ci/run: 3,032 packages, unfinished after 15 minutes on this machine kind's
            # two shared cores (docs/release.md, section 7). For a bigger machine: fetch kubectl-kyverno.
            "kubectl-kyverno",
            "github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno",
            "v1.19.1",
            ("version",),
            override_env="KYVERNO_CLI",
            ldflags=_kyverno_ldflags,
            main_module=True,
            minutes="fifteen or more",
        ),
    )
}


def tool(name: str) -> GoTool:
    try:
        return TOOLS[name]
    except KeyError:
        raise RuntimeError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, names = (args[0], args[1:]) if args else ("list", [])
    try:
        if command == "list":
            for item in TOOLS.values():
                print(f"{item.name}\t{item.package}@{item.version}\t{item.binary_path()}")
            return 0
        if command == "fetch":
            for name in names:
                print(tool(name).fetch())
            return 0
        if command == "path":
            for name in names:
                target = tool(name).binary_path()
                if not target.exists():
                    say(f"no {name} in {target.parent}; run: python tools/go_tool.py fetch {name}")
                    return 1
                print(target)
            return 0
    except RuntimeError as exc:
        say(str(exc))
        return 1
    say(f"unknown command {command!r}; use fetch, path or list")
    return 2


if __name__ == "__main__":
    sys.exit(main())
