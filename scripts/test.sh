#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy --strict), then pytest.
# Installs what it needs into ./.venv on first run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/venv.sh "test,dev,plot,progress"
echo "== ruff" >&2
"$PY" -m ruff check udpim netsim tests tools
"$PY" -m ruff format --check udpim netsim tests tools
echo "== mypy --strict" >&2
"$PY" -m mypy
echo "== pytest" >&2
# pytest exits 5 when no test was collected; set -e turns that into a failure.
"$PY" -m pytest "$@"
