#!/usr/bin/env bash
# Installs everything the test suite needs into ./.venv (and Debian's Chromium with CJK fonts for
# the browser tests, poppler-utils to render the audit PDFs), then runs lint and the whole suite.
# Usage: bash scripts/test.sh [pytest arguments]   (e.g. -m "not slow" for the quick loop)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null || [ ! -d /usr/share/fonts/opentype/noto ] || ! command -v pdftoppm >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-noto-cjk poppler-utils >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# torch is pinned to the CPU build (an unpinned torch pulls a CUDA build of several GB).
.venv/bin/python -m pip install --quiet torch==2.13.0 -e ".[test,syntax,ray,interop]"
.venv/bin/attnscope models install all

.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
.venv/bin/mypy src

ATTNSCOPE_REQUIRE_MODELS=1 ATTNSCOPE_REQUIRE_BROWSER=1 .venv/bin/python -m pytest "$@"
