#!/usr/bin/env bash
# Python side of the set-up: a venv inside the repo (.venv) with pthscope (editable) and its dev
# tools, torch pinned to 2.13.0 (a CPU build lies on this kind of machine; an unpinned torch would
# pull a multi-GB CUDA build). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.pthscope-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import torch, pygls, pytest_lsp, pthscope' # fails loudly if anything is missing
  touch "$stamp"
fi
