#!/usr/bin/env bash
# Python side of the set-up: a venv inside the repo (.venv) with pthscope (editable) and its dev
# tools, torch pinned to 2.13.0 (a CPU build lies on this kind of machine; an unpinned torch would
# pull a multi-GB CUDA build). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# git-lfs: the file doctor's tests fetch a real LFS pointer's content with the command it suggests.
if ! command -v git-lfs >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git-lfs >/dev/null) ||
    echo "setup: could not install git-lfs; the tests that need it are skipped"
fi
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
