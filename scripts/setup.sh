#!/usr/bin/env bash
# Idempotent setup: a virtualenv with the project at the versions pinned in constraints.txt (every transitive
# package; torch's CPU wheel is on disk here, NOTES.md says why torch, prefect, fastapi and sqlalchemy are
# pinned), and Debian's PostgreSQL server for the embedded default.
#   ./scripts/setup.sh          what `ingestflow up` needs
#   ./scripts/setup.sh --test   also the test-only extras (pytest, llama.cpp's server, Chromium for the browser test)
# Regenerate the constraints after changing dependencies: ./scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
TEST=0
[ "${1:-}" = "--test" ] && TEST=1

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "please install: $*" >&2
    exit 1
  fi
}

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null; then
  apt_install postgresql
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
if [ "$TEST" = 1 ]; then
  .venv/bin/pip install -q -c constraints.txt -e '.[dev]'
  if ! command -v chromium >/dev/null; then
    apt_install chromium
  fi
else
  .venv/bin/pip install -q -c constraints.txt -e .
fi
