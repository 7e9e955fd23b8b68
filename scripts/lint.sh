#!/usr/bin/env bash
# The code lint gate: ruff's linter, ruff's format check and mypy on the application code
# (domain/, adapters/, config/, app.py). Rules and options live in pyproject.toml
# ([tool.ruff], [tool.mypy]); tests/, bench/ and scripts/ are not gated.
# All three run; the script fails if any finds a problem.
#
#   scripts/lint.sh            check (what CI runs)
#
# Tools: ruff, mypy and types-psutil, all in the `test` extra. mypy keeps its cache in
# .mypy_cache (the first run reads torch's and diffusers' types and takes a minute or two).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
paths=(domain adapters config app.py)
status=0

echo "-- ruff check"
python3 -m ruff check "${paths[@]}" || status=1
echo "-- ruff format --check"
python3 -m ruff format --check "${paths[@]}" || status=1
echo "-- mypy"
python3 -m mypy "${paths[@]}" || status=1

exit "$status"
