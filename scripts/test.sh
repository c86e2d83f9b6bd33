#!/usr/bin/env bash
# Installs everything the tests need and runs the whole suite: a venv with gitml and its test
# extras, and (with apt-get, as root) the real components the tests start on 127.0.0.1:
# headless Chromium (the HTML report), wrk (load on the model server), Prometheus with
# promtool (scraping and alert rules) and PostgreSQL (Optuna's shared storage).
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
# KServe's SDK models (generated from its OpenAPI spec) check the InferenceService we write;
# the wheel alone: its dependencies are a model server's, none of which the check needs
[ -f .cache/kserve-sdk/kserve/models/__init__.py ] \
    || quiet_pip --no-deps --target .cache/kserve-sdk 'kserve==0.21.0' >/dev/null \
    || echo "note: could not install KServe's SDK; its InferenceService check will say so"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "${missing[@]}" >/dev/null) \
        || echo "note: could not install ${missing[*]}; the tests that need them will say so"
fi
export PATH="$PWD/.venv/bin:$PATH"
# --dist loadscope: a module's tests stay on one worker, in order (some share a module fixture)
exec .venv/bin/python -m pytest -n 2 --dist loadscope -q -p no:cacheprovider "$@"
