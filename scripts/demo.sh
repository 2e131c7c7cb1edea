#!/usr/bin/env bash
# The main job: a demo of what udpim can do today, on embedded defaults.
# Installs what it needs into ./.venv on first run. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/venv.sh "plot,progress"
exec "$PY" -m tools.demo "$@"
