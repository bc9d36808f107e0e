// A real VS Code for the end-to-end test: code-server 4.139.1 in a fresh profile (own user
// data, extensions, XDG and TMPDIR folders), on 127.0.0.1, in its own process group that is
// always killed; plus the workbench helpers the test needs. Recipe: shared/real-vscode-e2e.md.
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const E2E_ROOT = process.env.E2E_ROOT ?? join(REPO, '.e2e');
const CODE_SERVER = join(E2E_ROOT, 'cs', 'node_modules', '.bin', 'code-server');

/** Settings that keep the workbench quiet and predictable (no trust prompt, welcome page, chat). */
export function workbenchSettings(extra) {
  return {
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'chat.disableAIFeatures': true,
    'editor.hover.delay': 150,
    'workbench.hover.delay': 300,
    'workbench.reduceMotion': 'on',
    'git.openRepositoryInParentFolders': 'never',
    ...extra,
  };
}

/**
 * Workspace trust on, the folder not trusted, no prompt: the workbench opens in Restricted Mode
 * (with startCodeServer's `workspaceTrust`). Recipe: shared/real-vscode-e2e.md.
 */
export const RESTRICTED_MODE_SETTINGS = {
  'security.workspace.trust.enabled': true,
  'security.workspace.trust.startupPrompt': 'never',
  'security.workspace.trust.banner': 'never',
  'security.workspace.trust.untrustedFiles': 'open',
};

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * A fresh profile under `runDir`; returns the paths and environment code-server needs.
 * `machineSettings`: the remote machine's settings (default: the same as the user's).
 */
export function freshProfile(runDir, settings, machineSettings = settings) {
  rmSync(runDir, { recursive: true, force: true });
  const dirs = { data: join(runDir, 'data'), exts: join(runDir, 'exts'), tmp: join(runDir, 'tmp'), ws: join(runDir, 'ws') };
  for (const dir of [...Object.values(dirs), join(dirs.data, 'User'), join(dirs.data, 'Machine')]) {
    mkdirSync(dir, { recursive: true });
  }
  // User settings, and the same as the remote machine's (code-server's extension host is "remote":
  // machine-scoped settings such as pthscope.interpreter may be read from there).
  writeFileSync(join(dirs.data, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  writeFileSync(join(dirs.data, 'Machine', 'settings.json'), JSON.stringify(machineSettings, null, 2));
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: join(runDir, 'xdg-config'), // code-server writes config.yaml and logs here, not in $HOME
    XDG_DATA_HOME: join(runDir, 'xdg-data'),
    TMPDIR: dirs.tmp, // VS Code leaves its ipc sockets in the temp folder
    PATH: `${join(E2E_ROOT, 'node24', 'bin')}:${process.env.PATH}`,
  };
  return { ...dirs, runDir, env };
}

export function installExtension(profile, vsix) {
  execFileSync(CODE_SERVER, ['--user-data-dir', profile.data, '--extensions-dir', profile.exts, '--install-extension', vsix, '--force'], {
    env: profile.env,
    stdio: 'pipe',
  });
}

/**
 * Starts code-server on 127.0.0.1:`port` in its own process group; resolves once /healthz answers.
 * Workspace trust is off unless `workspaceTrust` (then the profile's settings decide).
 */
export async function startCodeServer(profile, port, { workspaceTrust = false } = {}) {
  const log = createWriteStream(join(profile.runDir, 'code-server.log'));
  const child = spawn(
    CODE_SERVER,
    ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check',
      ...(workspaceTrust ? [] : ['--disable-workspace-trust']),
      '--disable-getting-started-override', '--user-data-dir', profile.data, '--extensions-dir', profile.exts, profile.ws],
    { env: profile.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const killGroup = () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killGroup); // last resort if the runner dies before stop()
  const server = { child, port, url: `http://127.0.0.1:${port}/`, killGroup };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`code-server exited with ${child.exitCode}; see ${join(profile.runDir, 'code-server.log')}`);
    }
    try {
      if ((await fetch(`${server.url}healthz`)).ok) {
        return server;
      }
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopCodeServer(server);
  throw new Error('code-server did not answer /healthz within 60 s');
}

/** SIGTERM to the process group (server, extension host, language server), then SIGKILL. */
export async function stopCodeServer(server) {
  if (!server) {
    return;
  }
  const exited = new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      resolve();
    } else {
      server.child.once('exit', resolve);
    }
  });
  try {
    process.kill(-server.child.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  server.killGroup();
  process.removeListener('exit', server.killGroup);
}

/** The profile's log files whose names match `pattern` (the extension's channel: /pthscope/). */
export function logFiles(profile, pattern) {
  const found = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        walk(path);
      } else if (pattern.test(name)) {
        found.push(path);
      }
    }
  };
  try {
    walk(join(profile.data, 'logs'));
  } catch {
    // no logs yet
  }
  return found;
}

/** The tail of the extension's log channel and of code-server's log, for a failure report. */
export function diagnostics(profile) {
  const tail = (file, lines = 40) => readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  const found = logFiles(profile, /pthscope|exthost\.log/);
  return [...found.map((f) => `--- ${f}\n${tail(f)}`), `--- code-server.log\n${tail(join(profile.runDir, 'code-server.log'))}`].join('\n');
}

/** Chromium as shared/real-vscode-e2e.md says (no background networking, no sandbox as root). */
export function launchChromium(chromium) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

// ---------- workbench helpers (playwright page) ----------

/** Moves keyboard focus from a webview (which may keep keys to itself) to the workbench. */
async function focusWorkbench(page, attempt = 0) {
  // A click on the active tab may leave the focus in its webview, which can swallow keys: every
  // other attempt clicks the side bar's title instead, when the side bar is open.
  const sideTitle = page.locator('.part.sidebar .composite.title .title-label');
  const target = attempt % 2 === 1 && (await sideTitle.isVisible().catch(() => false))
    ? sideTitle : page.locator('.tabs-container .tab.active');
  if (await target.count()) {
    await target.first().click();
  }
}

/**
 * Opens the quick input with `key` (F1, Control+P). A webview that has just taken focus may
 * swallow the first key press, so focus the workbench and try again a few times.
 */
async function openQuickInput(page, key) {
  const input = page.locator('.quick-input-widget input');
  for (let attempt = 0; attempt < 5; attempt++) {
    await focusWorkbench(page, attempt);
    await page.keyboard.press(key);
    try {
      await input.waitFor({ state: 'visible', timeout: 3_000 });
      return input;
    } catch {
      await page.keyboard.press('Escape');
    }
  }
  throw new Error(`${key} did not open the quick input`);
}

/** Types `text` into the open quick input and clicks the entry labelled exactly `label`. */
async function pickExactly(page, text, label) {
  const input = page.locator('.quick-input-widget input');
  await input.fill(text);
  const exact = new RegExp(`^\\s*${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  const entry = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: exact }) }).first();
  await entry.click({ timeout: 15_000 });
  // done when the widget closes, or (a command that opens its own quick pick) shows other text
  await page.waitForFunction((typed) => {
    const widget = document.querySelector('.quick-input-widget');
    return !widget || widget.offsetParent === null || widget.querySelector('input')?.value !== typed;
  }, text, { timeout: 15_000 });
}

/** Opens the quick input with `key` and types `text`, again if the widget closed meanwhile (focus moved to a page that just opened). */
async function typeInQuickInput(page, key, text) {
  for (let attempt = 0; ; attempt++) {
    const input = await openQuickInput(page, key);
    try {
      await input.fill(text, { timeout: 5_000 });
      return;
    } catch (error) {
      if (attempt === 2) {
        throw error;
      }
    }
  }
}

export async function quickOpen(page, fileName) {
  await typeInQuickInput(page, 'Control+P', fileName);
  await pickExactly(page, fileName, fileName);
}

export async function runCommand(page, title) {
  await typeInQuickInput(page, 'F1', `>${title}`);
  await pickExactly(page, `>${title}`, title);
}

/** Runs the context-menu entry `label` of `target` (a locator). The menu ignores a click that
 * comes at once after it opened: wait, hover the entry, then press Enter. */
export async function contextMenu(page, target, label) {
  await target.click({ button: 'right' });
  const item = page.locator('.context-view .action-item', { has: page.locator('.action-label', { hasText: label }) }).first();
  await item.waitFor({ timeout: 15_000 });
  await page.waitForTimeout(500);
  await item.hover();
  await page.keyboard.press('Enter');
  await item.waitFor({ state: 'detached', timeout: 15_000 });
}

/** Picks a colour theme through "Preferences: Color Theme". */
export async function setColorTheme(page, theme) {
  await typeInQuickInput(page, 'F1', '>Preferences: Color Theme');
  const exact = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: /^\s*Preferences: Color Theme\s*$/ }) }).first();
  await exact.click({ timeout: 15_000 });
  await pickExactly(page, theme, theme);
}

/** The active custom editor's page (webviews are two nested iframes). */
export function activeWebview(page) {
  return page.frameLocator('iframe.webview.ready:visible').frameLocator('iframe#active-frame');
}

/** Waits until the active page shows its summary; fails at once with the page's error instead. */
export async function openedPage(page) {
  const webview = activeWebview(page);
  await webview.locator('#summary-tensors, #status.problem').first().waitFor({ timeout: 90_000 });
  const failure = webview.locator('#status.problem');
  if (await failure.count()) {
    throw new Error(`the page shows an error: ${await failure.innerText()}`);
  }
  return webview;
}

/** Shows the pthscope side panel (clicking its activity-bar icon when it is not already open). */
export async function showCheckpointTree(page) {
  const title = page.locator('.part.sidebar .title-label', { hasText: /pthscope/i });
  if (!(await title.isVisible())) {
    await page.locator('.activitybar [aria-label^="pthscope"]').first().click();
  }
  await title.waitFor({ timeout: 15_000 });
}
