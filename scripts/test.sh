#!/usr/bin/env bash
# The README's test command: sets everything up, then runs every test. Each suite prints its own
# runner's summary; the script exits non-zero if any step failed (and says which).
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
step() {
  local name=$1; shift
  echo "=== $name"
  if ! "$@"; then failed+=("$name"); fi
}

bash scripts/setup.sh || { echo "set-up of the Python venv failed"; exit 1; }
step "ruff" .venv/bin/ruff check server tests benchmarks
step "mypy" .venv/bin/mypy
step "pytest" .venv/bin/pytest -q -p no:cacheprovider tests --ignore=tests/e2e
step "npm ci" npm ci --no-audit --no-fund --silent
step "client lint" npm run --silent lint
step "client typecheck" npm run --silent typecheck
step "client unit tests" npm test --silent
step "real VS Code e2e" bash scripts/test-e2e.sh

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED steps: ${failed[*]}"
  exit 1
fi
echo "all test steps passed"
