#!/usr/bin/env bash
# Re-resolve every dependency (runtime and test extras) in a scratch virtualenv and write constraints.txt,
# which scripts/setup.sh installs from, so a fresh machine gets the versions the suite was run with.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3.11 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -e '.[dev]'
{
  echo "# Every transitive version, written by scripts/lock.sh; scripts/setup.sh installs with -c constraints.txt."
  "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^-e '
} > constraints.txt
rm -rf "$tmp"
