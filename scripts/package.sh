#!/usr/bin/env bash
# Builds pthscope.vsix: bundles the client (esbuild, production), puts the Python server and
# its pure-Python dependencies under bundled/ (the launcher script pthscope_launch.py, pthscope,
# and bundled/libs with exact versions from scripts/bundled-requirements.txt), and runs vsce. The .vsix needs nothing from the user's
# Python environment but Python >= 3.10.
# Usage: scripts/package.sh [OUT.vsix]   (default: pthscope.vsix in the repo root)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$REPO/pthscope.vsix}
E2E_ROOT=${E2E_ROOT:-$REPO/.e2e}
PYTHON=${PYTHON:-python3}
cd "$REPO"
# Runs a command and shows its output only when it fails.
quietly() {
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then cat "$log"; rm -f "$log"; return 1; fi
  rm -f "$log"
}

quietly bash scripts/setup-vscode.sh --tools-only   # private node 24 + vsce (vsce 4 needs node >= 22)
[ -d node_modules/vscode-languageclient ] || npm ci --no-audit --no-fund --silent
quietly node esbuild.mjs --production

rm -rf bundled
mkdir -p bundled/libs
# Pure-Python wheels only, for the oldest Python we support, whatever Python runs pip.
quietly "$PYTHON" -m pip install --disable-pip-version-check --no-deps --target bundled/libs \
  --only-binary=:all: --platform any --implementation py --python-version 3.10 --abi none \
  -r scripts/bundled-requirements.txt
rm -rf bundled/libs/bin
cp -r server/pthscope bundled/pthscope
cp server/pthscope_launch.py bundled/   # the server's entry point: see its docstring
find bundled -name __pycache__ -type d -prune -exec rm -rf {} +

# vsce walks the whole folder before applying .vscodeignore, so package from a small staging
# copy instead of a repo that holds .venv and .e2e.
STAGE="$REPO/build/vsix"
rm -rf "$STAGE"
mkdir -p "$STAGE/client/out"
cp -r package.json LICENSE README.md .vscodeignore bundled "$STAGE/"
cp -r client/media "$STAGE/client/"
cp -r client/out/extension.js client/out/page.js client/out/diff.js client/out/codicons "$STAGE/client/out/"
(cd "$STAGE" && PATH="$E2E_ROOT/node24/bin:$PATH" quietly "$E2E_ROOT/tools/node_modules/.bin/vsce" package \
  --no-dependencies --out "$OUT")
echo "packaged $OUT ($(du -h "$OUT" | cut -f1))"
