// End to end in a real VS Code: packages pthscope.vsix, installs it into a fresh code-server
// profile, generates the demo workspace with torch, and drives the workbench with Debian's
// Chromium through playwright-core. Nothing is mocked: the extension starts the real server
// (the .vsix's bundled/pthscope_launch.py) with the repo's .venv python. Workspace trust is off
// here; restricted.e2e.test.mjs runs an untrusted workspace.
// Expected numbers come from scripts/make_demo.py (expected.json), computed from the models.
// Screenshots: .e2e/shots/. Needs scripts/setup-vscode.sh and scripts/setup.sh to have run.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  activeWebview, diagnostics, E2E_ROOT, freePort, freshProfile, installExtension, launchChromium, openedPage as pageOpened, quickOpen, REPO, runCommand,
  setColorTheme, showCheckpointTree, startCodeServer, stopCodeServer, workbenchSettings,
} from './codeServer.mjs';

const { chromium } = createRequire(join(E2E_ROOT, 'tools', 'package.json'))('playwright-core');
const PYTHON = join(REPO, '.venv', 'bin', 'python');
const RUN = join(E2E_ROOT, 'run');
const SHOTS = join(E2E_ROOT, 'shots');

describe('pthscope in a real VS Code (code-server)', { timeout: 600_000 }, () => {
  let profile;
  let server;
  let browser;
  let page;
  let expected;

  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

  const openedPage = () => pageOpened(page);

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    profile = freshProfile(RUN, workbenchSettings({ 'pthscope.interpreter': PYTHON }));
    const vsix = join(RUN, 'pthscope.vsix');
    execFileSync('bash', [join(REPO, 'scripts', 'package.sh'), vsix], { stdio: 'inherit' });
    execFileSync(PYTHON, [join(REPO, 'scripts', 'make_demo.py'), profile.ws], { stdio: 'inherit' });
    expected = JSON.parse(readFileSync(join(profile.ws, 'expected.json'), 'utf8'));
    installExtension(profile, vsix);
    server = await startCodeServer(profile, await freePort());
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

  // Runs a step; on failure saves a screenshot and prints the extension's and code-server's logs.
  const step = (name, body) => it(name, { timeout: 120_000 }, async () => {
    try {
      await body();
    } catch (error) {
      await shot(`failure-${name.replace(/\W+/g, '-')}`).catch(() => undefined);
      console.error(diagnostics(profile));
      throw error;
    }
  });

  step('the whole-model page shows its tensors and frozen parameters', async () => {
    const whole = expected.whole_model;
    await quickOpen(page, whole.file);
    const webview = await openedPage();
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), whole.tensors);
    assert.equal(Number(await webview.locator('#summary-frozen').getAttribute('data-value')), whole.parameters_frozen);
    assert.equal(Number(await webview.locator('#summary-trainable').getAttribute('data-value')), whole.parameters_trainable);
    assert.equal(Number(await webview.locator('#summary-parameters').getAttribute('data-value')), whole.parameters_total);
    // the summary separates the roles the server decided: parameters and buffers of the model
    const role = async (id) => Number(await webview.locator(`#role-${id}`).getAttribute('data-value'));
    assert.equal(await role('parameter-tensors'), whole.parameter_tensors);
    assert.equal(await role('parameter-elements'), whole.parameters_total);
    assert.equal(await role('buffer-tensors'), whole.buffer_tensors);
    assert.equal(await role('buffer-elements'), whole.buffer_elements);
    assert.equal(await role('optimizer_state-tensors'), 0);
    // the virtualised table: its first page arrives through pthscope/tensors
    await webview.locator('#viewport .row', { hasText: whole.frozen_tensor }).first().waitFor({ timeout: 30_000 });
    await webview.locator('#row-count', { hasText: `${whole.tensors} of ${whole.tensors} tensors` }).waitFor({ timeout: 30_000 });
    // the class is not importable here: the banner lists it as unknown, not dangerous
    await webview.locator('#safety.unknown', { hasText: whole.class }).waitFor({ timeout: 10_000 });
    await shot('01-whole-model-page');
  });

  step('the table filters and sorts through the server', async () => {
    const webview = activeWebview(page);
    await webview.locator('#filter').fill('fc.');
    await webview.locator('#row-count', { hasText: `2 of ${expected.whole_model.tensors} tensors` }).waitFor({ timeout: 15_000 });
    await webview.locator('#filter').fill('');
    await webview.locator('button.sort[data-sort="numel"]').click();
    await webview.locator('#viewport .row[aria-rowindex="1"] .col-numel').waitFor({ timeout: 15_000 });
    const numels = await webview.locator('#viewport .row .col-numel').allInnerTexts();
    const values = numels.slice(0, 5).map((text) => Number(text.replace(/,/g, '')));
    assert.deepEqual(values, [...values].sort((a, b) => b - a), `not sorted by numel, descending: ${values}`);
    await shot('02-table-sorted');
  });

  step('the side panel shows the module tree and a requires_grad tooltip', async () => {
    const whole = expected.whole_model;
    await showCheckpointTree(page);
    // tree rows are labelled "<name>, <description>" (accessibilityInformation)
    const row = (name) => page.locator(`.part.sidebar .monaco-list-row[aria-label^="${name}, "]`).first();
    for (const name of whole.top_level_modules) {
      await row(name).waitFor({ timeout: 60_000 });
    }
    // above the modules, the file's contents by role, as the server counted them
    const parameters = page.locator('.part.sidebar .monaco-list-row[aria-label^="model parameters, "]').first();
    await parameters.waitFor({ timeout: 30_000 });
    assert.match(await parameters.getAttribute('aria-label'),
      new RegExp(`^model parameters, ${whole.parameter_tensors} tensors · ${whole.parameters_total.toLocaleString('en-US')} elements`));
    await page.locator('.part.sidebar .monaco-list-row[aria-label^="optimizer state, none"]').first().waitFor({ timeout: 10_000 });
    const [moduleName, tensorName] = whole.frozen_tensor.split('.');
    assert.match(await row(moduleName).getAttribute('aria-label'), /frozen/);
    await row(moduleName).click();
    const tensorRow = row(tensorName);
    await tensorRow.waitFor({ timeout: 30_000 });
    const tooltip = page.locator('.monaco-hover:visible, .workbench-hover:visible', { hasText: 'requires_grad' }).first();
    let text = '';
    for (let attempt = 0; attempt < 8 && !text; attempt++) {
      await page.mouse.move(5, 5);
      await tensorRow.hover();
      try {
        await tooltip.waitFor({ timeout: 3_000 });
        text = (await tooltip.innerText()).replace(/\s+/g, ' ');
      } catch {
        // hover service still warming up: move away and try again
      }
    }
    assert.match(text, /requires_grad\s*false/, `tooltip: ${text}`);
    assert.match(text, /frozen/);
    await page.waitForTimeout(500);
    await shot('03-tree-tooltip');
    await page.mouse.move(5, 5);
  });

  step('Find in Checkpoint reveals a nested tensor in the tree', async () => {
    const target = expected.whole_model.deep_tensor;
    await runCommand(page, 'pthscope: Find in Checkpoint…');
    const input = page.locator('.quick-input-widget input');
    await input.fill(target);
    const match = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${target.replace(/\./g, '\\.')}\\s*$`) }) }).first();
    await match.click({ timeout: 30_000 });
    const leaf = target.split('.').pop();
    const selected = page.locator(`.part.sidebar .monaco-list-row.selected[aria-label^="${leaf}, "]`);
    await selected.waitFor({ timeout: 30_000 });
    await shot('03b-find-revealed');
  });

  step('a Lightning checkpoint: model parameters apart from the optimizer state', async () => {
    const lightning = expected.lightning;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, lightning.file);
    const webview = await openedPage();
    const role = async (id) => Number(await webview.locator(`#role-${id}`).getAttribute('data-value'));
    assert.equal(await role('parameter-tensors'), lightning.parameter_tensors);
    assert.equal(await role('parameter-elements'), lightning.parameters_total);
    assert.equal(Number(await webview.locator('#summary-parameters').getAttribute('data-value')), lightning.parameters_total);
    assert.equal(await role('buffer-tensors'), lightning.buffer_tensors);
    assert.equal(await role('optimizer_state-tensors'), lightning.optimizer_tensors);
    assert.equal(await role('optimizer_state-elements'), lightning.optimizer_elements);
    await webview.locator('#roles').scrollIntoViewIfNeeded();
    await shot('01b-lightning-roles');
  });

  step('the hostile file shows the red safety banner', async () => {
    const hostile = expected.hostile;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, hostile.file);
    const banner = (await openedPage()).locator('#safety.dangerous');
    await banner.waitFor({ timeout: 10_000 });
    const text = await banner.innerText();
    for (const name of hostile.dangerous_globals) {
      assert.ok(text.includes(name), `banner does not name ${name}: ${text}`);
    }
    assert.equal(Number(await activeWebview(page).locator('#summary-tensors').getAttribute('data-value')), hostile.tensors);
    await shot('04-hostile-banner');
  });

  step('30,000 tensors: the table stays virtual and fast, the tree pages', async () => {
    const large = expected.large_model;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, large.file);
    const webview = await openedPage();
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), large.tensors);
    const total = large.tensors.toLocaleString('en-US');
    await webview.locator('#row-count', { hasText: `${total} of ${total} tensors` }).waitFor({ timeout: 30_000 });
    // jump to the end: only a window of rows is in the DOM, the last page is fetched on demand
    await webview.locator('#viewport').focus();
    await page.keyboard.press('End');
    await webview.locator(`#viewport .row.selected[data-key="${large.last_key}"]`).waitFor({ timeout: 10_000 });
    const rendered = await webview.locator('#viewport .row').count();
    assert.ok(rendered < 200, `${rendered} rows in the DOM for ${large.tensors} tensors`);
    await shot('06-large-model-end');
    await webview.locator('#filter').fill(large.layer_prefix);
    await webview.locator('#row-count', { hasText: `${large.tensors_per_layer} of ${total} tensors` }).waitFor({ timeout: 15_000 });
    // the side panel pages large containers: the last row of the first page is "Load more".
    // (End selects the last row; ArrowRight expands it when it is a container.)
    await showCheckpointTree(page);
    await page.locator('.part.sidebar .monaco-list-row').first().click();
    const loadMore = page.locator('.part.sidebar .monaco-list-row', { hasText: /Load [\d,]+ more/ }).first();
    for (let depth = 0; depth < 6 && !(await loadMore.isVisible()); depth++) {
      await page.keyboard.press('End');
      await page.keyboard.press('ArrowRight');
      await page.waitForTimeout(700);
      await page.keyboard.press('End');
      await page.waitForTimeout(300);
    }
    await loadMore.waitFor({ timeout: 10_000 });
    const before = await loadMore.innerText();
    await loadMore.click();
    const nextLoadMore = page.locator('.part.sidebar .monaco-list-row', { hasText: /Load [\d,]+ more/ }).filter({ hasNotText: before }).first();
    for (let attempt = 0; attempt < 20 && !(await nextLoadMore.isVisible()); attempt++) {
      await page.waitForTimeout(500);
      await page.keyboard.press('End'); // the next page arrives asynchronously; End again once it has
    }
    await nextLoadMore.waitFor({ timeout: 5_000 });
    await shot('07-large-model-tree');
    console.log(`# 30,000-row table: ${rendered} rows rendered`);
  });

  step('a truncated file shows its error in the page and the tree', async () => {
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, expected.broken.file);
    const error = activeWebview(page).locator('#problems .problem.error');
    await error.waitFor({ timeout: 90_000 });
    assert.match(await error.innerText(), /\S/);
    await showCheckpointTree(page);
    await page.locator('.part.sidebar .monaco-list-row .codicon-error').first().waitFor({ timeout: 30_000 });
    await shot('08-truncated-file');
  });

  step('a Git LFS pointer is named, with the command that fetches the real file', async () => {
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, expected.lfs_pointer.file);
    const error = activeWebview(page).locator('#problems .problem.error');
    await error.waitFor({ timeout: 90_000 });
    const text = await error.innerText();
    assert.match(text, /not-a-checkpoint/);
    assert.match(text, /Git LFS pointer/);
    assert.ok(text.includes(expected.lfs_pointer.oid) && text.includes('git lfs pull'), text);
    await shot('08b-lfs-pointer');
  });

  step('a state_dict page says requires_grad is not stored', async () => {
    const stateDict = expected.state_dict;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, stateDict.file);
    const webview = await openedPage();
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), stateDict.tensors);
    await webview.locator('.note', { hasText: 'requires_grad is not saved' }).waitFor({ timeout: 10_000 });
    await shot('05-state-dict-page');
  });

  step('clicking a tensor shows its values: min, max, mean and a histogram', async () => {
    const webview = activeWebview(page);
    const row = webview.locator('#viewport .row[data-key]').first();
    const key = await row.getAttribute('data-key');
    await row.click();
    await webview.locator('#stats-key', { hasText: key }).waitFor({ timeout: 10_000 });
    await webview.locator('#stats-min').waitFor({ timeout: 60_000 });
    assert.ok(Number(await webview.locator('#stats-min').getAttribute('data-value')) <= Number(await webview.locator('#stats-max').getAttribute('data-value')));
    assert.ok(await webview.locator('#stats-histogram .bar').count() > 0);
    await shot('05b-tensor-values');
  });

  step('train.py: a hover on the checkpoint path and the requires_grad quick fix', async () => {
    const train = expected.train_py;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, train.file);
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await editor.locator('.view-lines').waitFor({ timeout: 30_000 });
    // the diagnostic arrives from the server: a warning squiggle under the load_state_dict call
    await editor.locator('.squiggly-warning').first().waitFor({ timeout: 60_000 });
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
    await shot('11-train-py-hover');
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');

    // put the cursor inside the flagged call (a few characters into its line), then ask for fixes
    await editor.locator('.view-line', { hasText: /^\s*\w+\.load_state_dict\(/ }).first().click({ position: { x: 70, y: 8 } });
    await page.keyboard.press('Control+.');
    const fix = page.locator('.action-widget .monaco-list-row', { hasText: train.fix_title }).first();
    await fix.waitFor({ timeout: 15_000 });
    await shot('12-train-py-quick-fix');
    await fix.click();
    // the fix re-applies the freezing to the freshly loaded model, right after load_state_dict
    await page.keyboard.press('Control+End');
    await editor.locator('.view-lines', { hasText: train.fix_inserts }).waitFor({ timeout: 15_000 });
    await shot('13-train-py-fixed');
  });

  // --- Python files follow the data flow (issue 9): compare.py loads a state_dict and a whole model.

  // Hovers `token` until the hover shows `expect` (the server may still be reading the files).
  const hoverUntil = async (token, expect) => {
    const hover = page.locator('.monaco-hover:visible', { hasText: expect }).first();
    for (let attempt = 0; attempt < 12; attempt++) {
      await page.mouse.move(5, 5);
      await token.hover();
      try {
        await hover.waitFor({ timeout: 3_000 });
        return (await hover.innerText()).replace(/\s+/g, ' ');
      } catch {
        // not linked yet
      }
    }
    throw new Error(`no hover showing ${expect}`);
  };

  // Scrolls the editor to the first line of compare.py holding `needle` (the editor renders only
  // the lines in view) with "Go to Line".
  const goToLine = async (needle) => {
    const lines = readFileSync(join(profile.ws, expected.compare_py.file), 'utf8').split('\n');
    const line = lines.findIndex((text) => text.includes(needle)) + 1;
    assert.ok(line > 0, `compare.py has no ${needle}`);
    await page.keyboard.press('Control+G');
    await page.keyboard.type(String(line));
    await page.keyboard.press('Enter');
    await page.waitForTimeout(300);
  };

  const openCompare = async () => {
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, expected.compare_py.file);
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await editor.locator('.view-lines').waitFor({ timeout: 30_000 });
    return editor;
  };

  step('a two-checkpoint script: each key hovers against its own file, and the light bulb is short', async () => {
    const compare = expected.compare_py;
    const editor = await openCompare();
    await goToLine(compare.state_dict_key);
    const key = editor.locator('.view-lines span span', { hasText: compare.state_dict_key }).first();
    const text = await hoverUntil(key, compare.state_dict_file);
    assert.match(text, /not stored in this state_dict/, text);
    assert.doesNotMatch(text, /whole_model/, text);
    await page.waitForTimeout(400);
    await shot('15-two-checkpoints-key-hover');
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
    await goToLine(compare.model_line);
    await editor.locator('.view-line', { hasText: compare.model_line }).first().click({ position: { x: 60, y: 8 } });
    await page.keyboard.press('Control+.');
    const rows = page.locator('.action-widget .monaco-list-row.action');
    await rows.first().waitFor({ timeout: 15_000 });
    const titles = await rows.allInnerTexts();
    assert.ok(titles.length <= 6, `light bulb: ${titles.join(' | ')}`);
    assert.match(titles[0], /Freeze \/ unfreeze modules of net…/, titles.join(' | '));
    assert.ok(!titles.some((t) => /entire model/.test(t)), titles.join(' | '));
    await shot('16-short-light-bulb');
  });

  step('the modules quick pick freezes a module of the file the model is loaded from', async () => {
    const compare = expected.compare_py;
    await page.locator('.action-widget .monaco-list-row.action', { hasText: 'Freeze / unfreeze modules of net' }).first().click();
    const widget = page.locator('.quick-input-widget');
    await widget.locator('.quick-input-title', { hasText: compare.modules_title }).waitFor({ timeout: 30_000 });
    const row = widget.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${compare.module}\\s*$`) }) }).first();
    await row.waitFor({ timeout: 15_000 });
    await shot('17-modules-quick-pick');
    await row.click(); // in a multi-select pick, a click toggles the row's checkbox
    await widget.locator('.quick-input-count, .monaco-count-badge', { hasText: '1' }).first().waitFor({ timeout: 10_000 });
    await page.keyboard.press('Enter');
    const freeze = widget.locator('.quick-input-list .monaco-list-row', { hasText: 'Freeze the picked modules' }).first();
    await freeze.click({ timeout: 15_000 });
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await editor.locator('.view-lines', { hasText: compare.freeze_inserts }).waitFor({ timeout: 15_000 });
    await shot('17b-modules-frozen');
    await page.keyboard.press('Control+Z');
  });

  step('weights_only=False on a file that would run code is an error on its torch.load', async () => {
    const compare = expected.compare_py;
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await goToLine(compare.hostile_line);
    const line = editor.locator('.view-line', { hasText: compare.hostile_line }).first();
    await line.waitFor({ timeout: 30_000 });
    await editor.locator('.squiggly-error').first().waitFor({ timeout: 60_000 });
    const text = await hoverUntil(line.locator('span span', { hasText: /^False$/ }).first(), 'runs code the file chose');
    assert.match(text, /PTH004/, text);
    await page.waitForTimeout(400);
    await shot('18-hostile-weights-only-error');
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
  });

  step('Ctrl+click on a checkpoint path opens its page', async () => {
    const compare = expected.compare_py;
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await goToLine(compare.link_path);
    const token = editor.locator('.view-lines span span', { hasText: compare.link_path }).first();
    await token.hover();
    await page.keyboard.down('Control');
    await page.waitForTimeout(500);
    await token.click();
    await page.keyboard.up('Control');
    const webview = await openedPage();
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), expected.whole_model.tensors);
    await page.locator('.tabs-container .tab.active', { hasText: compare.link_path }).waitFor({ timeout: 15_000 });
    await shot('19-ctrl-click-opens-page');
  });

  step('Restart Server: a new server answers the next page', async () => {
    await runCommand(page, 'pthscope: Restart Server');
    await page.locator('.statusbar', { hasText: 'pthscope: server restarted' }).waitFor({ timeout: 60_000 });
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, expected.whole_model.file);
    const webview = await openedPage();
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), expected.whole_model.tensors);
  });

  step('the page follows dark and high-contrast themes', async () => {
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, expected.hostile.file);
    const webview = await openedPage();
    const background = () => webview.locator('body').evaluate((body) => getComputedStyle(body).backgroundColor);
    for (const [theme, isBackground, name] of [
      ['Dark High Contrast', (rgb) => rgb === 'rgb(0, 0, 0)', '09-high-contrast'],
      ['Dark Modern', (rgb) => (/rgb\((\d+), (\d+), (\d+)\)/.exec(rgb)?.slice(1).every((c) => Number(c) < 80) ?? false), '10-dark'],
    ]) {
      await setColorTheme(page, theme);
      let rgb = '';
      for (let i = 0; i < 50 && !isBackground(rgb); i++) {
        await page.waitForTimeout(200);
        rgb = await background();
      }
      assert.ok(isBackground(rgb), `${theme}: page background is ${rgb}`);
      await webview.locator('#safety.dangerous').waitFor({ timeout: 5_000 });
      await shot(name);
    }
  });
});
