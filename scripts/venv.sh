# Sourced by demo.sh and test.sh: make ./.venv hold this checkout and its extras.
# Usage: . scripts/venv.sh EXTRAS   (EXTRAS like "test,dev,plot")
# Needs only python3 (>= 3.11) with venv and pip. Reinstalls only when
# pyproject.toml or the extras change, so a second run starts at once.
set -eu
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=$1
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.udpim-installed"
want="$(cat "$root/pyproject.toml") [$extras]"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing udpim and netsim into $venv (first run only) ..." >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[$extras]"
  printf '%s' "$want" > "$stamp"
fi
PY="$venv/bin/python"
export PY
