# Sourced by demo.sh and test.sh: make .venv if missing and install the package (with extras "$1").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
STAMP=".venv/.cmcat-installed-$1"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ scripts/constraints.txt -nt "$STAMP" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch first, pinned to the CPU build, so nothing else pulls a CUDA build.
    .venv/bin/python -m pip install --quiet -c scripts/constraints.txt torch
    .venv/bin/python -m pip install --quiet -c scripts/constraints.txt -e ".$1"
    touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
