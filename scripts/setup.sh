#!/usr/bin/env bash
# Idempotent setup: a virtualenv with the project and its pinned dependencies (torch's CPU wheel is on disk
# here; see NOTES.md for why torch, prefect, fastapi and sqlalchemy are pinned), and Debian's Chromium for
# the dashboard's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
