// End to end in Restricted Mode: the same packaged .vsix in a real VS Code (code-server) with
// workspace trust on and the demo workspace NOT trusted. The workspace is hostile: decoy modules
// (json.py, argparse.py, asyncio/, pygls/, pthscope/, sitecustomize.py, torch/, ...) and a
// `.vscode/settings.json` whose pthscope.interpreter is a fake "python" that runs the real one,
// each leaving a marker file when run; the user's PYTHONPATH (code-server's environment) names
// the workspace too. The user setting names the repo's .venv python. Then: the page, the tree,
// the red banner, tensor values and a hover work, the page says what Restricted Mode changes,
// and no marker appears. Granting trust restarts the server with the workspace's interpreter
// (its marker appears, as the user allowed), still importing nothing from the workspace.
// Screenshots: .e2e/shots/restricted-*.png.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  diagnostics, E2E_ROOT, freePort, freshProfile, installExtension, launchChromium, logFiles, openedPage, quickOpen, REPO,
  RESTRICTED_MODE_SETTINGS, runCommand, showCheckpointTree, startCodeServer, stopCodeServer, workbenchSettings,
} from './codeServer.mjs';

const { chromium } = createRequire(join(E2E_ROOT, 'tools', 'package.json'))('playwright-core');
const PYTHON = join(REPO, '.venv', 'bin', 'python');
const RUN = join(E2E_ROOT, 'run-restricted');
const SHOTS = join(E2E_ROOT, 'shots');
const DECOY_MODULES = ['json.py', 'argparse.py', 'typing.py', 'asyncio/__init__.py', 'pygls/__init__.py', 'lsprotocol/__init__.py',
  'pthscope/__init__.py', 'pthscope/__main__.py', 'pthscope/worker.py', 'sitecustomize.py', 'torch/__init__.py', 'numpy/__init__.py'];

/** Decoys in `ws` that write `markers/<name>` when imported or run; returns the fake interpreter. */
function plantDecoys(ws, markers) {
  mkdirSync(markers, { recursive: true });
  for (const module of DECOY_MODULES) {
    const file = join(ws, module);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `open(${JSON.stringify(join(markers, module.replace(/\//g, '.')))}, 'w').close()\n`);
  }
  const fakePython = join(ws, 'tools', 'python');
  mkdirSync(dirname(fakePython), { recursive: true });
  writeFileSync(fakePython, `#!/bin/sh\ntouch ${JSON.stringify(join(markers, 'workspace-python'))}\nexec ${JSON.stringify(PYTHON)} "$@"\n`);
  chmodSync(fakePython, 0o755);
  mkdirSync(join(ws, '.vscode'), { recursive: true });
  writeFileSync(join(ws, '.vscode', 'settings.json'), JSON.stringify({ 'pthscope.interpreter': fakePython }, null, 2));
  return fakePython;
}

describe('pthscope in Restricted Mode (an untrusted workspace full of decoys)', { timeout: 600_000 }, () => {
  let profile;
  let server;
  let browser;
  let page;
  let expected;
  let markers;
  let fakePython;

  const shot = (name) => page.screenshot({ path: join(SHOTS, `restricted-${name}.png`) });
  const markersLeft = () => readdirSync(markers).sort();
  const extensionLog = () => logFiles(profile, /pthscope/).map((file) => readFileSync(file, 'utf8')).join('\n');

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    profile = freshProfile(RUN, workbenchSettings({ ...RESTRICTED_MODE_SETTINGS, 'pthscope.interpreter': PYTHON }));
    const vsix = join(RUN, 'pthscope.vsix');
    execFileSync('bash', [join(REPO, 'scripts', 'package.sh'), vsix], { stdio: 'inherit' });
    execFileSync(PYTHON, [join(REPO, 'scripts', 'make_demo.py'), profile.ws], { stdio: 'inherit' });
    expected = JSON.parse(readFileSync(join(profile.ws, 'expected.json'), 'utf8'));
    markers = join(RUN, 'markers');
    fakePython = plantDecoys(profile.ws, markers);
    // the user's environment names the workspace on PYTHONPATH: it must not reach the server
    profile.env.PYTHONPATH = profile.ws;
    installExtension(profile, vsix);
    server = await startCodeServer(profile, await freePort(), { workspaceTrust: true });
    browser = await launchChromium(chromium);
    page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
    await page.goto(server.url, { waitUntil: 'domcontentloaded' });
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'train.py' }).waitFor({ timeout: 120_000 });
  });

  after(async () => {
    if (page && process.exitCode) {
      await shot('failure').catch(() => undefined);
    }
    await browser?.close().catch(() => undefined);
    await stopCodeServer(server);
  });

  const step = (name, body) => it(name, { timeout: 120_000 }, async () => {
    try {
      await body();
    } catch (error) {
      await shot(`failure-${name.replace(/\W+/g, '-')}`).catch(() => undefined);
      console.error(diagnostics(profile));
      throw error;
    }
  });

  step('the workbench is in Restricted Mode', async () => {
    await page.locator('.statusbar', { hasText: 'Restricted Mode' }).waitFor({ timeout: 30_000 });
  });

  step('the page works and says what Restricted Mode changes', async () => {
    const whole = expected.whole_model;
    await quickOpen(page, whole.file);
    const webview = await openedPage(page);
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), whole.tensors);
    await webview.locator('#viewport .row', { hasText: whole.frozen_tensor }).first().waitFor({ timeout: 30_000 });
    const note = webview.locator('#restricted-mode');
    await note.waitFor({ timeout: 30_000 });
    const text = (await note.innerText()).replace(/\s+/g, ' ');
    assert.match(text, /Restricted Mode: this workspace cannot choose pthscope's Python/);
    assert.ok(text.includes(`runs ${PYTHON} (Python `), `the note names the user's python: ${text}`);
    assert.match(text, /from the pthscope\.interpreter setting/);
    await shot('01-page');
  });

  step('the server was started isolated, from the packaged launcher, with the user setting', async () => {
    const log = extensionLog();
    const started = log.split('\n').find((line) => line.includes('Starting the server with')) ?? '';
    assert.ok(started.includes(`Starting the server with ${PYTHON}`), started);
    const bundled = join(profile.exts, 'pthscope.pthscope-0.1.0', 'bundled');
    assert.ok(started.endsWith(`Restricted Mode): ${PYTHON} -I -S -X utf8 ${bundled}/pthscope_launch.py pthscope lsp in ${bundled}`), started);
  });

  step('the side panel shows the module tree', async () => {
    await showCheckpointTree(page);
    for (const name of expected.whole_model.top_level_modules) {
      await page.locator(`.part.sidebar .monaco-list-row[aria-label^="${name}, "]`).first().waitFor({ timeout: 60_000 });
    }
    await shot('02-tree');
  });

  step('the hostile file shows the red safety banner', async () => {
    const hostile = expected.hostile;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, hostile.file);
    const banner = (await openedPage(page)).locator('#safety.dangerous');
    await banner.waitFor({ timeout: 10_000 });
    const text = await banner.innerText();
    for (const name of hostile.dangerous_globals) {
      assert.ok(text.includes(name), `banner does not name ${name}: ${text}`);
    }
    await shot('03-hostile-banner');
  });

  step("tensor values come from the user's torch, not the workspace's", async () => {
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, expected.state_dict.file);
    const webview = await openedPage(page);
    await webview.locator('#viewport .row[data-key]').first().click();
    await webview.locator('#stats-min').waitFor({ timeout: 60_000 });
    assert.ok(await webview.locator('#stats-histogram .bar').count() > 0);
  });

  step('train.py: a hover on the checkpoint path', async () => {
    const train = expected.train_py;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, train.file);
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await editor.locator('.view-lines').waitFor({ timeout: 30_000 });
    const pathToken = editor.locator('.view-lines span span', { hasText: train.checkpoint }).first();
    const hover = page.locator('.monaco-hover:visible', { hasText: 'requires_grad' }).first();
    let hoverText = '';
    for (let attempt = 0; attempt < 10 && !hoverText; attempt++) {
      await page.mouse.move(5, 5);
      await pathToken.hover();
      try {
        await hover.waitFor({ timeout: 3_000 });
        hoverText = (await hover.innerText()).replace(/\s+/g, ' ');
      } catch {
        // the server may still be reading the checkpoint
      }
    }
    assert.match(hoverText, /not stored/, `hover: ${hoverText}`);
    await page.waitForTimeout(500);
    await shot('04-hover');
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
  });

  step('nothing from the workspace ran', async () => {
    assert.deepEqual(markersLeft(), []);
  });

  step("granting trust restarts the server with the workspace's interpreter", async () => {
    await runCommand(page, 'Workspaces: Manage Workspace Trust');
    await page.locator('.workspace-trust-editor .monaco-button', { hasText: /^\s*Trust\s*$/ }).first().click({ timeout: 30_000 });
    await page.locator('.workspace-trust-editor', { hasText: 'You trust this folder' }).waitFor({ timeout: 30_000 });
    // the trust editor is a modal editor: close it with its own close action
    await page.locator('.monaco-modal-editor-block [aria-label^="Close"], .monaco-modal-editor-block .codicon-close').first().click({ timeout: 10_000 });
    await page.locator('.monaco-modal-editor-block').waitFor({ state: 'detached', timeout: 10_000 });
    await page.locator('.statusbar', { hasText: 'Restricted Mode' }).waitFor({ state: 'detached', timeout: 30_000 });
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, expected.whole_model.file);
    const webview = await openedPage(page);
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), expected.whole_model.tensors);
    const deadline = Date.now() + 60_000;
    while (!extensionLog().includes(`Starting the server with ${fakePython}`) && Date.now() < deadline) {
      await page.waitForTimeout(500);
    }
    assert.ok(extensionLog().includes(`Starting the server with ${fakePython}`), 'the workspace setting applies once trusted');
    assert.equal(await webview.locator('#restricted-mode').count(), 0, 'no Restricted Mode note once trusted');
    // the workspace's interpreter ran (the user trusted it); its modules still are not imported
    assert.deepEqual(markersLeft(), ['workspace-python']);
    await shot('05-trusted');
  });
});
