#!/usr/bin/env bash
# One release, from a clean tagged commit to signed images in the registry (docs/release.md):
#
#   REGISTRY=<registry>.cr.cloud.ru/prompt2pic scripts/release.sh [--skip-tests] [--out DIR] [--images LIST]
#   scripts/release.sh --dry-run [--skip-tests]
#
#  1. refuses a dirty work tree and a HEAD without a tag (the tag, less a leading "v", is the version);
#  2. runs the test suite (P2P_RELEASE_TEST_CMD, default `python3 -m pytest`) unless --skip-tests
#     (the CI's release job passes it: its test job ran the same commit before);
#  3. builds the Dockerfile targets bot, worker-cpu and worker-cuda (those of
#     scripts/container_check.sh) with podman or docker (CONTAINER_ENGINE overrides the detection);
#  4. writes an SBOM of each image: syft when installed, else CycloneDX (cyclonedx-bom from PyPI,
#     run by the image's own Python on its /opt/venv, so the SBOM lists what the image holds);
#  5. pushes each image as REGISTRY/prompt2pic-<target>:VERSION and reads back its digest;
#  6. signs each image by digest with cosign and attaches its SBOM as a signed CycloneDX
#     attestation: with the key COSIGN_KEY (a file, or the PEM itself in the variable) and
#     COSIGN_PASSWORD, or keyless (COSIGN_KEYLESS=1 or SIGSTORE_ID_TOKEN: the CI's OIDC token);
#  7. prints the digests and writes OUT/release-digests.env (for scripts) and
#     OUT/release-values.yaml (for `helm upgrade -f`: the chart then runs repo@sha256:...).
#
# --images bot,worker-cpu releases only those targets (comma-separated; default all three): a
# hotfix of one image, or the test against a local registry (tests/test_release_registry.py).
# --dry-run builds the bot image only, writes its SBOM, and prints what a release would push and
# sign (no registry, no key, no cosign needed); the checks of step 1 still apply.
# A missing tool stops the script with a message naming it; nothing is skipped silently.
#
# Environment: REGISTRY (required unless --dry-run), REGISTRY_USER/REGISTRY_PASSWORD (optional:
# log the engine and cosign in), COSIGN_KEY, COSIGN_PASSWORD, COSIGN_KEYLESS, SIGSTORE_ID_TOKEN,
# COSIGN_TLOG_UPLOAD=false (key signing without the public Rekor transparency log: an offline or
# private registry; the chart's imageVerification.ignoreTlog must then be true),
# CONTAINER_ENGINE, PYTHON_IMAGE (build arg), P2P_BUILD_CA_BUNDLE (a CA file mounted into the
# build, for a network that re-signs TLS), P2P_RELEASE_TEST_CMD, P2P_RELEASE_CACHE (default .cache/release).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CYCLONEDX_VERSION=7.5.0
TARGETS=(bot worker-cpu worker-cuda)
dry_run=0
skip_tests=0
images=""
out="$root/dist/release"

die() {
    echo "release: $*" >&2
    exit 1
}
say() { echo "== release: $*"; }
usage() { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --skip-tests) skip_tests=1 ;;
        --images)
            [ $# -ge 2 ] || die "--images needs a list, e.g. bot,worker-cpu"
            images="$2"
            shift
            ;;
        --out)
            [ $# -ge 2 ] || die "--out needs a folder"
            out="$2"
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

# --------------------------------------------------------------------------- 1. the commit
git rev-parse --is-inside-work-tree > /dev/null 2>&1 || die "$root is not a git work tree"
dirty="$(git status --porcelain --untracked-files=normal)"
if [ -n "$dirty" ]; then
    echo "$dirty" | head -20 >&2
    die "the work tree is not clean: commit or stash the changes above; a release is built from a commit, not from local files"
fi
commit="$(git rev-parse HEAD)"
if ! tag="$(git describe --exact-match --tags HEAD 2> /dev/null)"; then
    die "HEAD ($commit) has no tag: tag the commit to release (git tag -s v1.2.3) and run again"
fi
version="${tag#v}"
[[ "$version" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "the tag $tag does not make a valid image tag"
say "commit $commit, tag $tag, version $version"

# --------------------------------------------------------------------------- tools (all first)
if [ -n "${CONTAINER_ENGINE:-}" ]; then
    command -v "$CONTAINER_ENGINE" > /dev/null 2>&1 || die "CONTAINER_ENGINE=$CONTAINER_ENGINE is not an executable"
    engine="$CONTAINER_ENGINE"
elif command -v podman > /dev/null 2>&1; then
    engine=podman
elif command -v docker > /dev/null 2>&1 && docker info > /dev/null 2>&1; then
    engine=docker
else
    die "no container engine: install podman (or docker with a running daemon), or set CONTAINER_ENGINE"
fi
case "$("$engine" --version 2> /dev/null)" in
    *[Pp]odman*) engine_kind=podman ;;
    *) engine_kind=docker ;;
esac

if command -v syft > /dev/null 2>&1; then
    sbom_tool=syft
else
    command -v python3 > /dev/null 2>&1 || die "neither syft nor python3 (for cyclonedx-bom) is installed: install syft or python3 with pip"
    sbom_tool=cyclonedx
fi

if [ "$dry_run" = 1 ]; then
    registry="${REGISTRY:-<registry>.cr.cloud.ru/prompt2pic}"
    targets=(bot)
else
    [ -n "${REGISTRY:-}" ] || die "REGISTRY is not set: REGISTRY=<registry>.cr.cloud.ru/<path> (docs/release.md)"
    registry="${REGISTRY%/}"
    targets=("${TARGETS[@]}")
    if [ -n "$images" ]; then
        IFS=, read -r -a targets <<< "$images"
        for target in "${targets[@]}"; do
            [[ " ${TARGETS[*]} " == *" $target "* ]] || die "--images: unknown image '$target' (known: ${TARGETS[*]})"
        done
    fi
    command -v cosign > /dev/null 2>&1 \
        || die "cosign is not installed: it signs the images (https://docs.sigstore.dev/cosign/system_config/installation/)"
fi

# How cosign signs: a key file, the key's PEM in COSIGN_KEY, or keyless with the CI's OIDC token.
sign_args=()
if [ -n "${COSIGN_KEY:-}" ]; then
    if [[ "$COSIGN_KEY" == -----BEGIN* ]]; then
        sign_args=(--key env://COSIGN_KEY)
    else
        [ -r "$COSIGN_KEY" ] || { [ "$dry_run" = 1 ]; } || die "COSIGN_KEY=$COSIGN_KEY is neither a readable key file nor a PEM key"
        sign_args=(--key "$COSIGN_KEY")
    fi
    [ "$dry_run" = 1 ] || [ -n "${COSIGN_PASSWORD+set}" ] || die "COSIGN_PASSWORD is not set (an empty value is allowed for a key without a password)"
elif [ "${COSIGN_KEYLESS:-0}" = 1 ] || [ -n "${SIGSTORE_ID_TOKEN:-}" ]; then
    # Keyless: cosign (2.0.1 and later) reads the OIDC token from SIGSTORE_ID_TOKEN itself (GitLab's
    # id_tokens), or asks GitHub Actions for one (id-token: write). It is never put on a command
    # line (`--identity-token TOKEN`), where ps would show it.
    sign_args=()
elif [ "$dry_run" = 0 ]; then
    die "no signing identity: set COSIGN_KEY (a file or the PEM) and COSIGN_PASSWORD, or COSIGN_KEYLESS=1 where the CI offers OIDC"
fi
case "${COSIGN_TLOG_UPLOAD:-true}" in
    true) ;;
    false) sign_args+=(--tlog-upload=false) ;;
    *) die "COSIGN_TLOG_UPLOAD must be true or false, not '$COSIGN_TLOG_UPLOAD'" ;;
esac
say "engine $engine ($engine_kind), SBOM by $sbom_tool, registry $registry, images ${targets[*]}"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="${P2P_RELEASE_CACHE:-$root/.cache/release}"  # cyclonedx-bom and the digest files
mkdir -p "$work"

# --------------------------------------------------------------------------- 2. tests
if [ "$skip_tests" = 1 ]; then
    say "tests: SKIPPED (--skip-tests)"
else
    test_cmd="${P2P_RELEASE_TEST_CMD:-python3 -m pytest}"
    say "tests: $test_cmd"
    bash -c "$test_cmd" || die "the tests failed ($test_cmd): nothing is built"
fi

# --------------------------------------------------------------------------- 3. build
image_ref() { echo "$registry/prompt2pic-$1:$version"; }
local_ref() { echo "localhost/prompt2pic-$1:$version"; }

build_args=(--target "" -t "" --label "org.opencontainers.image.revision=$commit"
    --label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.source=$(git config --get remote.origin.url || echo unknown)")
[ -n "${PYTHON_IMAGE:-}" ] && build_args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
if [ "$engine_kind" = podman ]; then
    # --format docker keeps the HEALTHCHECK; --layers=false: buildah 1.28 bind-mounts an empty
    # folder for RUN --mount=from=<cached stage> (containers/buildah#4375; docs/deploy.md).
    build_args+=(--format docker --layers=false)
fi
[ -n "${P2P_BUILD_CA_BUNDLE:-}" ] && build_args+=(--network host -v "$P2P_BUILD_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")

for target in "${targets[@]}"; do
    say "build: target $target -> $(local_ref "$target")"
    start=$SECONDS
    build_args[1]="$target"
    build_args[3]="$(local_ref "$target")"
    "$engine" build "${build_args[@]}" -f Dockerfile . || die "the $target image does not build"
    say "built $target in $((SECONDS - start)) s, image id $("$engine" image inspect --format '{{.Id}}' "$(local_ref "$target")")"
done

# --------------------------------------------------------------------------- 4. SBOMs
cyclonedx_dir=""
cyclonedx_tool() {  # cyclonedx_tool PYTHON_MINOR: pure and manylinux wheels for the image's Python
    local minor="$1" arch
    arch="$(uname -m)"
    cyclonedx_dir="$work/cyclonedx-bom-$CYCLONEDX_VERSION-py$minor-$arch"
    [ -f "$cyclonedx_dir/.complete" ] && return 0
    rm -rf "$cyclonedx_dir"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore --target "$cyclonedx_dir" \
        --only-binary=:all: --implementation cp --python-version "$minor" \
        --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
        "cyclonedx-bom==$CYCLONEDX_VERSION" \
        || die "pip could not install cyclonedx-bom==$CYCLONEDX_VERSION (for the SBOM); install syft instead"
    touch "$cyclonedx_dir/.complete"
}

make_sbom() {  # make_sbom TARGET -> OUT/sbom-TARGET.cdx.json
    local target="$1" ref file minor
    ref="$(local_ref "$target")"
    file="$out/sbom-$target.cdx.json"
    if [ "$sbom_tool" = syft ]; then
        syft "$ref" -o "cyclonedx-json=$file" || die "syft failed on $ref"
    else
        minor="$("$engine" run --rm --network none --no-healthcheck --entrypoint /opt/venv/bin/python "$ref" \
            -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || die "no /opt/venv/bin/python in $ref"
        cyclonedx_tool "$minor"
        # The image's own Python reads its own /opt/venv: the tool comes in read-only on a mount and
        # never lands in the environment it describes.
        "$engine" run --rm --network none --no-healthcheck --entrypoint /opt/venv/bin/python \
            -v "$cyclonedx_dir:/sbom-tool:ro" "$ref" -c \
            'import sys; sys.path.insert(0, "/sbom-tool"); from cyclonedx_py._internal.cli import run; sys.argv = ["cyclonedx-py", "environment", "--output-format", "JSON", "/opt/venv/bin/python"]; run()' \
            > "$file.tmp" || die "cyclonedx-py failed in $ref"
        mv "$file.tmp" "$file"
    fi
    python3 -c 'import json, sys; bom = json.load(open(sys.argv[1])); assert bom["bomFormat"] == "CycloneDX"; print("   %d components" % len(bom.get("components", [])))' "$file" \
        || die "the SBOM $file is not a CycloneDX JSON document"
    say "SBOM of $target: $file"
}
for target in "${targets[@]}"; do
    make_sbom "$target"
done

# --------------------------------------------------------------------------- dry run: the plan
if [ "$dry_run" = 1 ]; then
    say "dry run: nothing pushed or signed. A release would run:"
    for target in "${TARGETS[@]}"; do
        ref="$(image_ref "$target")"
        echo "   push  $(local_ref "$target") -> $ref"
        echo "   sign  cosign sign --yes ${sign_args[*]:-<key or keyless>} ${ref%:*}@<digest of the push>"
        echo "   sbom  cosign attest --yes --type cyclonedx --predicate sbom-$target.cdx.json ${ref%:*}@<digest>"
    done
    echo "   write $out/release-digests.env and $out/release-values.yaml"
    say "dry run done (only the bot image was built)"
    exit 0
fi

# --------------------------------------------------------------------------- 5. push
if [ -n "${REGISTRY_USER:-}" ]; then
    host="${registry%%/*}"
    [ -n "${REGISTRY_PASSWORD:-}" ] || die "REGISTRY_USER is set but REGISTRY_PASSWORD is not"
    printf '%s' "$REGISTRY_PASSWORD" | "$engine" login --username "$REGISTRY_USER" --password-stdin "$host" > /dev/null \
        || die "$engine login $host failed"
    printf '%s' "$REGISTRY_PASSWORD" | cosign login --username "$REGISTRY_USER" --password-stdin "$host" > /dev/null \
        || die "cosign login $host failed"
fi

declare -A digests
for target in "${targets[@]}"; do
    ref="$(image_ref "$target")"
    say "push: $ref"
    "$engine" tag "$(local_ref "$target")" "$ref"
    if [ "$engine_kind" = podman ]; then
        "$engine" push --digestfile "$work/digest-$target" "$ref" || die "push of $ref failed"
        digest="$(cat "$work/digest-$target")"
    else
        "$engine" push "$ref" || die "push of $ref failed"
        digest="$("$engine" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" \
            | sed -n "s|^${registry}/prompt2pic-${target}@||p" | head -1)"
    fi
    [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "no digest came back for $ref (got '$digest')"
    digests[$target]="$digest"
done

# --------------------------------------------------------------------------- 6. sign, attach the SBOM
for target in "${targets[@]}"; do
    ref="$(image_ref "$target")"
    pinned="${ref%:*}@${digests[$target]}"
    say "sign: $pinned"
    cosign sign --yes "${sign_args[@]}" "$pinned" || die "cosign sign failed for $pinned"
    say "attest the SBOM: $pinned"
    cosign attest --yes "${sign_args[@]}" --type cyclonedx --predicate "$out/sbom-$target.cdx.json" "$pinned" \
        || die "cosign attest failed for $pinned"
done

# --------------------------------------------------------------------------- 7. digests
{
    echo "RELEASE_VERSION=$version"
    echo "RELEASE_COMMIT=$commit"
    echo "REGISTRY=$registry"
    for target in "${targets[@]}"; do
        key="$(echo "$target" | tr '[:lower:]-' '[:upper:]_')"
        echo "${key}_DIGEST=${digests[$target]}"
        echo "${key}_IMAGE=$(image_ref "$target" | sed 's/:[^:/]*$//')@${digests[$target]}"
    done
} > "$out/release-digests.env"
{
    echo "# Written by scripts/release.sh for $tag ($commit): helm upgrade ... -f this file."
    echo "image:"
    echo "  registry: \"$registry\""
    echo "  tag: \"$version\""
    for target in "${targets[@]}"; do
        case "$target" in
            bot) key=bot ;;
            worker-cpu) key=cpuWorker ;;
            worker-cuda) key=gpuWorker ;;
        esac
        printf '%s:\n  image:\n    digest: "%s"\n' "$key" "${digests[$target]}"
    done
} > "$out/release-values.yaml"
say "released $tag:"
cat "$out/release-digests.env"
say "written: $out/release-digests.env, $out/release-values.yaml, $out/sbom-*.cdx.json"
