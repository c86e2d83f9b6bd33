#!/usr/bin/env bash
# The main job end to end: installs gitml into .venv, then runs the demo on the arrests data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e . 2> >(grep -v "^WARNING: Location" >&2)
exec .venv/bin/python demo/demo.py "$@"
