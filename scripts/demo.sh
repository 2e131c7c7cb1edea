#!/usr/bin/env bash
# The main job: `udpim demo` -- a hub and two daemons chatting over lossy links, on embedded defaults.
# Installs what it needs into ./.venv on first run. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/venv.sh "plot,progress"
exec "$PY" -m udpim demo "$@"
