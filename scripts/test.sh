#!/usr/bin/env bash
# Installs everything the tests need (a venv with gitml and its test extras; headless
# Chromium for the HTML report test when apt-get is available) and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# (pip's "Location ... is ignored" warnings about this machine's local index are noise)
quiet_pip() { .venv/bin/python -m pip install -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }
quiet_pip --upgrade pip >/dev/null
quiet_pip -e '.[test]'
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "note: chromium could not be installed; the report browser test will be skipped"
fi
# wrk: the model server's load generator (a short smoke run in tests/test_serve.py; benchmarks/bench_serve.py)
if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
        || echo "note: wrk could not be installed; the wrk smoke test will be skipped"
fi
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -n 2 -q -p no:cacheprovider "$@"
