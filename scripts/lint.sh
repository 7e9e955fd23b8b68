#!/usr/bin/env bash
# The code lint gate: ruff's linter and ruff's format check on every Python file of the tree (the
# application, tests/, bench/, scripts/, tools/ and deploy/'s helpers), and mypy on the
# application, the benchmarks and the scripts and tools (with what they import from tests/, such as
# the fake Bot API). Rules and options live in pyproject.toml ([tool.ruff], [tool.mypy]).
# mypy does not check tests/ as a whole: its doubles are duck-typed on purpose and its settings
# are built from keyword arguments that only pydantic's plugin could type.
# All three run; the script fails if any finds a problem.
#
#   scripts/lint.sh            check (what CI runs)
#
# Tools: ruff, mypy and the stubs of the `test` extra. mypy keeps its cache in .mypy_cache (the
# first run reads torch's and diffusers' types and takes a few minutes).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
app=(domain adapters config app.py)
ruff_paths=("${app[@]}" tests bench scripts tools deploy)
mypy_paths=("${app[@]}" bench scripts tools deploy/docker)
status=0

echo "-- ruff check"
python3 -m ruff check "${ruff_paths[@]}" || status=1
echo "-- ruff format --check"
python3 -m ruff format --check "${ruff_paths[@]}" || status=1
echo "-- mypy"
python3 -m mypy "${mypy_paths[@]}" || status=1

exit "$status"
