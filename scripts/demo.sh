#!/usr/bin/env bash
# The main job, in one command: set everything up, build pthscope.vsix, generate the demo
# workspace (demo/), and open it in VS Code with pthscope installed: desktop `code` when it is
# on PATH, otherwise code-server on http://127.0.0.1:$PORT/ (default 18080; Ctrl-C stops it).
# Environment: PORT, DEMO_DIR (default demo/), E2E_ROOT (default .e2e/).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PORT=${PORT:-18080}
DEMO_DIR=$(realpath -m "${DEMO_DIR:-$REPO/demo}")
E2E_ROOT=${E2E_ROOT:-$REPO/.e2e}
PYTHON="$REPO/.venv/bin/python"
step() { echo "[demo ${SECONDS}s] $*"; }

step "Python venv (.venv: pthscope, pygls, torch)"
bash scripts/setup.sh
step "VS Code tools (.e2e: node 24, code-server, vsce, chromium)"
bash scripts/setup-vscode.sh
step "node modules"
[ -d node_modules/vscode-languageclient ] || npm ci --no-audit --no-fund --silent
step "pthscope.vsix"
bash scripts/package.sh "$REPO/pthscope.vsix"
step "demo workspace"
"$PYTHON" scripts/make_demo.py "$DEMO_DIR"
"$PYTHON" -m pthscope inspect --depth 1 "$DEMO_DIR/whole_model.pth" || true

if command -v code >/dev/null 2>&1; then
  step "opening $DEMO_DIR in VS Code"
  code --install-extension "$REPO/pthscope.vsix" --force
  # The server runs in the venv's Python, which has torch for tensor values.
  mkdir -p "$DEMO_DIR/.vscode"
  printf '{\n  "pthscope.interpreter": "%s"\n}\n' "$PYTHON" > "$DEMO_DIR/.vscode/settings.json"
  code "$DEMO_DIR" "$DEMO_DIR/whole_model.pth"
  exit 0
fi

# code-server in a profile of its own under .e2e/demo-profile (kept between runs).
PROFILE="$E2E_ROOT/demo-profile"
mkdir -p "$PROFILE/data/User" "$PROFILE/exts" "$PROFILE/tmp"
cat > "$PROFILE/data/User/settings.json" <<JSON
{
  "security.workspace.trust.enabled": false,
  "workbench.startupEditor": "none",
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "chat.disableAIFeatures": true,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "git.openRepositoryInParentFolders": "never",
  "pthscope.interpreter": "$PYTHON"
}
JSON
export PATH="$E2E_ROOT/node24/bin:$PATH"
export XDG_CONFIG_HOME="$PROFILE/xdg-config" XDG_DATA_HOME="$PROFILE/xdg-data"
CS="$E2E_ROOT/cs/node_modules/.bin/code-server"
step "installing the extension into code-server"
"$CS" --user-data-dir "$PROFILE/data" --extensions-dir "$PROFILE/exts" --install-extension "$REPO/pthscope.vsix" --force >/dev/null

TMPDIR="$PROFILE/tmp" setsid "$CS" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry \
  --disable-update-check --disable-workspace-trust --disable-getting-started-override \
  --user-data-dir "$PROFILE/data" --extensions-dir "$PROFILE/exts" "$DEMO_DIR" > "$PROFILE/code-server.log" 2>&1 &
CS_PID=$!
stop() {
  kill -TERM "$CS_PID" 2>/dev/null || true
  wait "$CS_PID" 2>/dev/null || true
  kill -TERM -- "-$CS_PID" 2>/dev/null || true   # the process group: extension host, language server
}
trap stop EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
  kill -0 "$CS_PID" 2>/dev/null || { tail -20 "$PROFILE/code-server.log"; exit 1; }
  sleep 0.1
done
step "ready"
cat <<TEXT

  pthscope demo: open  http://127.0.0.1:$PORT/  in a browser.
  Workspace: $DEMO_DIR
  Try: whole_model.pth (frozen layers), hostile_payload.pth (dangerous global), lightning.ckpt,
       the pthscope icon in the activity bar, and train.py.
  Ctrl-C stops code-server.

TEXT
wait "$CS_PID"
