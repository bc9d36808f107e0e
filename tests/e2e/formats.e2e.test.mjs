// End to end in a real VS Code: checkpoints that are more than one pickle — a TorchScript archive,
// a sharded safetensors set (opened from one of its shards, then as the whole set) and a
// torch.distributed.checkpoint folder (opened from the explorer's context menu) — each in the
// page and the side panel, with the packaged .vsix and the real server. The workspace and the
// numbers to expect come from tests/e2e/make_formats.py (torch and huggingface_hub).
// Screenshots: .e2e/shots/formats-*.png. Needs scripts/setup-vscode.sh and scripts/setup.sh.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  activeWebview, contextMenu, diagnostics, E2E_ROOT, freePort, freshProfile, installExtension, launchChromium, openedPage, quickOpen, REPO, runCommand,
  showCheckpointTree, startCodeServer, stopCodeServer, workbenchSettings,
} from './codeServer.mjs';

const { chromium } = createRequire(join(E2E_ROOT, 'tools', 'package.json'))('playwright-core');
const PYTHON = join(REPO, '.venv', 'bin', 'python');
const RUN = join(E2E_ROOT, 'run-formats');
const SHOTS = join(E2E_ROOT, 'shots');

describe('pthscope on TorchScript, sharded and distributed checkpoints (code-server)', { timeout: 600_000 }, () => {
  let profile;
  let server;
  let browser;
  let page;
  let expected;

  const shot = (name) => page.screenshot({ path: join(SHOTS, `formats-${name}.png`) });
  const dataValue = async (webview, id) => Number(await webview.locator(`#${id}`).getAttribute('data-value'));

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    profile = freshProfile(RUN, workbenchSettings({ 'pthscope.interpreter': PYTHON }));
    const vsix = join(RUN, 'pthscope.vsix');
    execFileSync('bash', [join(REPO, 'scripts', 'package.sh'), vsix], { stdio: 'inherit' });
    execFileSync(PYTHON, [join(REPO, 'tests', 'e2e', 'make_formats.py'), profile.ws], { stdio: 'inherit' });
    expected = JSON.parse(readFileSync(join(profile.ws, 'expected.json'), 'utf8'));
    installExtension(profile, vsix);
    server = await startCodeServer(profile, await freePort());
    browser = await launchChromium(chromium);
    page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
    await page.goto(server.url, { waitUntil: 'domcontentloaded' });
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'scripted.pt' }).waitFor({ timeout: 120_000 });
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

  step('a TorchScript archive: its module tree, frozen layers and the code warning', async () => {
    const ts = expected.torchscript;
    await quickOpen(page, ts.file);
    const webview = await openedPage(page);
    assert.equal(await webview.locator('#format').innerText(), 'torchscript');
    assert.equal(await dataValue(webview, 'summary-tensors'), ts.tensors);
    assert.equal(await dataValue(webview, 'summary-modules'), ts.modules);
    assert.equal(await dataValue(webview, 'summary-frozen'), ts.frozen);
    assert.equal(await dataValue(webview, 'summary-trainable'), ts.trainable);
    await webview.locator('.problem.warning', { hasText: 'torch.jit.load' }).waitFor({ timeout: 10_000 });
    // torch.jit.load takes only TorchScript's types, which it compiles from the archive's code: not "weights_only".
    assert.match(await webview.locator('#safety-verdict').innerText(), /^torch\.jit\.load makes \d+ __torch__\S* classes .*from the file's code, and runs that code$/);
    await quickOpen(page, 'crafted.pt');
    const crafted = await openedPage(page);
    assert.equal(await crafted.locator('#safety.dangerous #safety-verdict').innerText(),
      'Crafted: a Python unpickler would run posix.system (torch.jit.load refuses them)');
    await quickOpen(page, ts.file);
    await showCheckpointTree(page);
    const row = page.locator('.part.sidebar .monaco-list-row[aria-label^="0, "]').first();
    await row.waitFor({ timeout: 60_000 });
    assert.match(await row.getAttribute('aria-label'), /Linear/);
    assert.match(await row.getAttribute('aria-label'), /frozen/);
    await shot('01-torchscript');
  });

  step('a protocol-4 save is never called loadable with weights_only=True, nor a refused file said to run', async () => {
    const saved = expected.protocol4;
    assert.equal(saved.refused, true); // torch.load(weights_only=True) raised on it, in make_formats.py
    await quickOpen(page, saved.file);
    const webview = await openedPage(page);
    assert.match(await webview.locator('#safety.unknown #safety-verdict').innerText(),
      /^Needs weights_only=False: torch's weights_only unpickler cannot read its pickle; the \d+ globals it names are all on torch's allow-list$/);
    await webview.locator('#safety summary').click();
    await webview.locator('#safety .refusal', { hasText: 'uses the FRAME opcode at byte 2 (from pickle protocol 4)' }).waitFor({ timeout: 10_000 });
    await shot('05-protocol-4');
    assert.equal(expected.future.refused, true); // torch.load raised before unpickling, in make_formats.py
    await quickOpen(page, expected.future.file);
    const future = await openedPage(page);
    assert.equal(await future.locator('#safety.dangerous #safety-verdict').innerText(),
      'Crafted: a Python unpickler would run posix.system (torch.jit.load refuses the file before unpickling it)');
  });

  step('a shard names its set; the set opens whole', async () => {
    const sharded = expected.sharded;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, sharded.shard);
    const shard = await openedPage(page);
    await shard.locator('#part-of', { hasText: `shard 2 of ${sharded.shards}` }).waitFor({ timeout: 15_000 });
    await shot('02-shard');
    await shard.locator('#open-set').click();
    await page.locator('.tab', { hasText: 'model.safetensors.index.json' }).waitFor({ timeout: 30_000 });
    const set = await openedPage(page);
    assert.equal(await set.locator('#format').innerText(), 'sharded');
    assert.equal(await dataValue(set, 'summary-tensors'), sharded.tensors);
    await set.locator('#parts summary', { hasText: `Files (${sharded.shards})` }).waitFor({ timeout: 10_000 });
    const total = sharded.tensors.toLocaleString('en-US');
    await set.locator('#row-count', { hasText: `${total} of ${total} tensors` }).waitFor({ timeout: 30_000 });
    const last = set.locator('#viewport .row').last();
    assert.match(await last.getAttribute('title'), /in model-0000\d-of-0000\d\.safetensors/);
    await shot('03-sharded-set');
  });

  step('a torch.distributed.checkpoint folder from the explorer: tensors, roles and values', async () => {
    const dist = expected.dcp;
    await runCommand(page, 'View: Close All Editors');
    await page.locator('.activitybar [aria-label^="Explorer"]').first().click();
    const folder = page.locator('.explorer-folders-view .monaco-list-row', { hasText: dist.folder }).first();
    await contextMenu(page, folder, /^Open Checkpoint…$/);
    const webview = await openedPage(page);
    assert.equal(await webview.locator('#format').innerText(), 'torch-distributed');
    // dcp.load has no weights_only: the verdict names the load that imports the classes
    assert.match(await webview.locator('#safety-verdict').innerText(),
      /^Imports \d+ torch\.distributed classes .*when loaded \(torch\.distributed\.checkpoint\.load unpickles it without restriction\)$/);
    assert.equal(await dataValue(webview, 'summary-tensors'), dist.tensors);
    assert.ok(await dataValue(webview, 'role-optimizer_state-tensors') > 0);
    const first = webview.locator(`#viewport .row[data-key="${dist.first}"]`);
    await first.waitFor({ timeout: 30_000 });
    assert.match(await first.locator('.col-shape').getAttribute('title'), /DCP: 1 chunk in __0_0\.distcp/);
    await first.click();
    await webview.locator('#stats-min').waitFor({ timeout: 30_000 });
    await showCheckpointTree(page);
    await page.locator('.part.sidebar .monaco-list-row[aria-label^="optim, "]').first().waitFor({ timeout: 30_000 });
    await shot('04-distributed-checkpoint');
    assert.ok(activeWebview(page));
  });
});
