#!/usr/bin/env bash
# The real-VS-Code end-to-end test: installs what it needs (scripts/setup-vscode.sh; the Python
# venv comes from scripts/setup.sh), then runs tests/e2e with node's test runner, which packages
# the .vsix, starts code-server on 127.0.0.1 and drives it with Chromium. Exits non-zero on failure.
# Screenshots: .e2e/shots/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
bash scripts/setup-vscode.sh
[ -d node_modules/vscode-languageclient ] || npm ci --no-audit --no-fund --silent
exec node --test --test-concurrency=1 tests/e2e/*.test.mjs
