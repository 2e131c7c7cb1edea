#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy --strict), then pytest, which also
# measures branch coverage of udpim/core and fails under 100 % (STYLE.md E.6).
# Installs what it needs into ./.venv on first run. Extra arguments go to pytest
# (add --no-cov when running only part of the suite).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/venv.sh "test,dev,plot,progress"
echo "== ruff" >&2
"$PY" -m ruff check udpim netsim tests tools
"$PY" -m ruff format --check udpim netsim tests tools
echo "== mypy --strict" >&2
"$PY" -m mypy
echo "== pytest (+ branch coverage of udpim/core, 100 % required)" >&2
# pytest exits 5 when no test was collected; set -e turns that into a failure.
# The report lists only the files below 100 %, with their missed lines and branches.
"$PY" -m pytest \
  --cov=udpim/core --cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=100 \
  "$@"
