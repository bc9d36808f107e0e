// End to end in a real VS Code: packages pthscope.vsix, installs it into a fresh code-server
// profile, generates the demo workspace with torch, and drives the workbench with Debian's
// Chromium through playwright-core. Nothing is mocked: the extension starts the real server
// (the .vsix's bundled/pthscope_launch.py) with the repo's .venv python. Workspace trust is off
// here; restricted.e2e.test.mjs runs an untrusted workspace.
// Expected numbers come from scripts/make_demo.py (expected.json), computed from the models.
// Screenshots: .e2e/shots/. Needs scripts/setup-vscode.sh and scripts/setup.sh to have run.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  activeWebview, contextMenu, diagnostics, E2E_ROOT, freePort, freshProfile, installExtension, launchChromium, openedPage as pageOpened, quickOpen, REPO, runCommand,
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
  let valuesExpected;

  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

  const openedPage = () => pageOpened(page);

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    profile = freshProfile(RUN, workbenchSettings({ 'pthscope.interpreter': PYTHON }));
    const vsix = join(RUN, 'pthscope.vsix');
    execFileSync('bash', [join(REPO, 'scripts', 'package.sh'), vsix], { stdio: 'inherit' });
    execFileSync(PYTHON, [join(REPO, 'scripts', 'make_demo.py'), profile.ws], { stdio: 'inherit' });
    expected = JSON.parse(readFileSync(join(profile.ws, 'expected.json'), 'utf8'));
    execFileSync(PYTHON, [join(REPO, 'tests', 'e2e', 'make_values_demo.py'), profile.ws], { stdio: 'inherit' });
    valuesExpected = JSON.parse(readFileSync(join(profile.ws, 'values_expected.json'), 'utf8'));
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
    assert.match(text, /requires_grad\s*False \(frozen\)/, `tooltip: ${text}`);
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
    await webview.locator('#flags-note', { hasText: 'requires_grad was not saved' }).waitFor({ timeout: 10_000 });
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

  step('Scan for NaN/Inf marks the bad tensors in the page and the tree', async () => {
    const nan = valuesExpected.nan_model;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, nan.file);
    const webview = await openedPage();
    await runCommand(page, 'pthscope: Scan for NaN/Inf');
    const section = webview.locator('#scan');
    await section.waitFor({ timeout: 60_000 });
    assert.equal(Number(await section.getAttribute('data-bad')), nan.bad);
    assert.equal(Number(await section.getAttribute('data-errors')), nan.errors);
    assert.match(await webview.locator('#scan-summary').innerText(), /bad tensors/);
    assert.match(await section.innerText(), new RegExp(`${nan.nan_tensor.replace('.', '\\.')}[\\s\\S]*NaN`));
    // the table's rows carry the server's marks: an error on the NaN tensor, a warning on the zeros
    await webview.locator(`#viewport .row.scan-error[data-key="${nan.nan_tensor}"]`).waitFor({ timeout: 15_000 });
    await webview.locator(`#viewport .row.scan-warning[data-key="${nan.zero_tensor}"]`).waitFor({ timeout: 15_000 });
    // the notification names the tensor
    await page.locator('.notifications-toasts', { hasText: 'with NaN/inf' }).first().waitFor({ timeout: 15_000 });
    await shot('14-scan-page');
    // the tree: the group holding the NaN tensor says so
    await showCheckpointTree(page);
    const group = page.locator(`.part.sidebar .monaco-list-row[aria-label^="${nan.nan_tensor.split('.')[0]}, "]`).first();
    await group.waitFor({ timeout: 30_000 });
    assert.match(await group.getAttribute('aria-label'), /1 bad tensor/);
    assert.ok(await group.locator('.codicon-error').count() > 0, 'no error icon on the marked group');
    await shot('15-scan-tree');
  });

  step('Compare Checkpoints (two files in the explorer): fc changed, the frozen layers identical', async () => {
    const diff = valuesExpected.finetune;
    await runCommand(page, 'View: Close All Editors');
    await runCommand(page, 'View: Show Explorer');
    const entry = (name) => page.locator('.explorer-folders-view .monaco-list-row', { hasText: name }).first();
    await entry(diff.a).click();
    await entry(diff.b).click({ modifiers: ['Control'] });
    await contextMenu(page, entry(diff.b), /^Compare Checkpoints$/);
    await page.locator('.tabs-container .tab.active', { hasText: '↔' }).waitFor({ timeout: 30_000 });
    const webview = activeWebview(page);
    await webview.locator('#summary-matched').waitFor({ timeout: 90_000 });
    assert.equal(Number(await webview.locator('#summary-matched').getAttribute('data-value')), diff.matched);
    assert.equal(Number(await webview.locator('#summary-only-b').getAttribute('data-value')), diff.only_b);
    // the values stream in; then every module has its status
    await webview.locator(`#summary-identical[data-value="${diff.identical}"]`).waitFor({ timeout: 90_000 });
    assert.equal(Number(await webview.locator('#summary-changed').getAttribute('data-value')), diff.changed);
    await webview.locator(`#viewport .row[data-name="${diff.changed_module}"][data-status="changed"]`).waitFor({ timeout: 15_000 });
    for (const frozen of diff.frozen_modules) {
      await webview.locator(`#viewport .row[data-name="${frozen}"][data-status="identical"]`).waitFor({ timeout: 15_000 });
    }
    await shot('16-compare-modules');
    // a module row opens its tensors; sorted by max |Δ|, the changed ones come first
    await webview.locator(`#viewport .row[data-name="${diff.changed_module}"]`).dblclick();
    await webview.locator(`#viewport .row[data-name="${diff.changed_module}.weight"][data-status="changed"]`).waitFor({ timeout: 15_000 });
    await shot('17-compare-tensors');
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
    // (again if the menu did not come: a busy workbench can drop the key while a hover closes)
    const fix = page.locator('.action-widget .monaco-list-row', { hasText: train.fix_title }).first();
    for (let attempt = 0; attempt < 3; attempt++) {
      await editor.locator('.view-line', { hasText: /^\s*\w+\.load_state_dict\(/ }).first().click({ position: { x: 70, y: 8 } });
      await page.keyboard.press('Control+.');
      try {
        await fix.waitFor({ timeout: 8_000 });
        break;
      } catch {
        await page.keyboard.press('Escape');
      }
    }
    await fix.waitFor({ timeout: 8_000 });
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

  // --- Will this checkpoint load into this model? (issue 11): finetune.py loads weights saved from
  // nn.DataParallel into train.py's Net.
  step('will it load? the diagnostic and hover at load_state_dict, and the prefix fix that makes the script load', async () => {
    const finetune = expected.finetune_py;
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, finetune.file);
    const editor = page.locator('.editor-instance .monaco-editor').first();
    const line = editor.locator('.view-line', { hasText: finetune.load_line }).first();
    await line.waitFor({ timeout: 30_000 });
    await editor.locator('.squiggly-error').first().waitFor({ timeout: 60_000 });
    const text = await hoverUntil(line.locator('span span', { hasText: /load_state_dict/ }).last(), 'tensors match');
    assert.match(text, new RegExp(`0/${finetune.tensors} tensors match`), text);
    assert.match(text, /module\./, text);
    assert.match(text, /PTH008/, text);
    await page.waitForTimeout(400);
    await shot('30-will-it-load-hover');
    await page.mouse.move(5, 5);
    await page.keyboard.press('Escape');
    await line.click({ position: { x: 80, y: 8 } });
    await page.keyboard.press('Control+.');
    const fix = page.locator('.action-widget .monaco-list-row', { hasText: finetune.fix_title }).first();
    await fix.waitFor({ timeout: 15_000 });
    await shot('31-will-it-load-fix');
    await fix.click();
    await editor.locator('.view-lines', { hasText: 'removeprefix' }).waitFor({ timeout: 15_000 });
    await editor.locator('.squiggly-error').first().waitFor({ state: 'detached', timeout: 30_000 });
    await page.keyboard.press('Control+S');
    await page.waitForTimeout(1_000);
    // the edited script, run with torch, loads the checkpoint (strict=True)
    const out = execFileSync(PYTHON, [join(profile.ws, finetune.file)], { cwd: profile.ws, encoding: 'utf8' });
    assert.match(out, /^loaded \d+ parameters/, out);
    await shot('32-will-it-load-fixed');
  });

  step('Restart Server: a new server answers the next page', async () => {
    await runCommand(page, 'pthscope: Restart Server');
    await page.locator('.statusbar', { hasText: 'pthscope: server restarted' }).waitFor({ timeout: 60_000 });
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, expected.whole_model.file);
    const webview = await openedPage();
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), expected.whole_model.tensors);
  });

  step('Reload Webviews: the reloaded page reads its file again and shows its rows', async () => {
    await (await openedPage()).locator('body').evaluate((body) => { body.dataset.beforeReload = 'yes'; });
    await runCommand(page, 'Developer: Reload Webviews');
    await activeWebview(page).locator('body:not([data-before-reload])').waitFor({ timeout: 30_000 }); // the new document
    const webview = await openedPage();
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), expected.whole_model.tensors);
    await webview.locator('#viewport .row[data-key]').first().waitFor({ timeout: 30_000 });
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

// ---------- issue 9: the page, the side panel and Find as one navigation system ----------
// Its own code-server: pthscope.interpreter is set in the User settings only (a remote window,
// as code-server is, reads it there too), and the browser shrinks to 1000×700 for one step.
describe('the page, the side panel and Find as one (issue 9)', { timeout: 600_000 }, () => {
  const NAV_RUN = join(E2E_ROOT, 'run-navigation');
  const LATER_PYTHON = join(NAV_RUN, 'later', 'python'); // a Python that appears only after a failure
  let profile;
  let server;
  let browser;
  let page;
  let expected;

  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`) });
  const step = (name, body) => it(name, { timeout: 120_000 }, async () => {
    try {
      await body();
    } catch (error) {
      await shot(`failure-nav-${name.replace(/\W+/g, '-')}`).catch(() => undefined);
      console.error(diagnostics(profile));
      throw error;
    }
  });
  /** A tree row by its label and, where names repeat, its depth (1: the file's row). */
  const treeRow = (label, level) => page.locator(`.part.sidebar .monaco-list-row${level ? `[aria-level="${level}"]` : ''}[aria-label^="${label}, "]`).first();
  const workspaceSettings = () => join(profile.ws, '.vscode', 'settings.json');
  const closeAll = () => runCommand(page, 'View: Close All Editors');
  const openInPage = async (file) => {
    await closeAll();
    await quickOpen(page, file);
    return pageOpened(page);
  };

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    profile = freshProfile(NAV_RUN, workbenchSettings({ 'pthscope.interpreter': PYTHON }), workbenchSettings());
    const vsix = join(NAV_RUN, 'pthscope.vsix');
    execFileSync('bash', [join(REPO, 'scripts', 'package.sh'), vsix], { stdio: 'inherit' });
    execFileSync(PYTHON, [join(REPO, 'scripts', 'make_demo.py'), profile.ws], { stdio: 'ignore' });
    copyFileSync(join(profile.ws, 'resnet_state_dict.pth'), join(profile.ws, 'rewrite_me.pth'));
    expected = JSON.parse(readFileSync(join(profile.ws, 'expected.json'), 'utf8'));
    installExtension(profile, vsix);
    server = await startCodeServer(profile, await freePort());
    browser = await launchChromium(chromium);
    page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
    await page.goto(server.url, { waitUntil: 'domcontentloaded' });
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'train.py' }).waitFor({ timeout: 120_000 });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await stopCodeServer(server);
  });

  step('a User-settings interpreter runs the server in code-server; the status bar names it and its torch', async () => {
    const item = page.locator('.statusbar-item', { hasText: /Python 3\.\d+ · torch \d/ }).first();
    await item.waitFor({ timeout: 90_000 });
    assert.match(await item.getAttribute('aria-label'), new RegExp(`${PYTHON.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(Python 3\\.\\d+\\.\\d+, from the pthscope\\.interpreter setting\\)`));
  });

  step('clicking a tensor in the tree selects it in the page and shows its values; focus stays in the tree', async () => {
    const webview = await openInPage(expected.state_dict.file);
    await showCheckpointTree(page);
    for (const [level, name] of [[2, 'layer1'], [3, '0'], [4, 'bn1']]) {
      await treeRow(name, level).click();
    }
    await treeRow('running_mean', 5).click();
    await webview.locator('#viewport .row.selected[data-key="layer1.0.bn1.running_mean"]').waitFor({ timeout: 15_000 });
    await webview.locator('#stats-key', { hasText: 'layer1.0.bn1.running_mean' }).waitFor({ timeout: 30_000 });
    const values = await webview.locator('#stats-values').innerText();
    assert.equal(values.split(',').length, 16, `all 16 values of a [16] buffer: ${values}`);
    assert.ok(values.split(',').every((v) => Number.isFinite(Number(v))), values);
    assert.ok(await page.evaluate(() => document.activeElement?.closest('.part.sidebar') !== null), 'the keyboard left the tree');
    await shot('20-tree-click-values');
  });

  step('Enter in the page keeps the focus in the table and follows in the tree', async () => {
    const webview = activeWebview(page);
    await webview.locator('#viewport .row[data-key="bn1.weight"]').click();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await webview.locator('#stats-key', { hasText: /^bn1\.bias$/ }).waitFor({ timeout: 15_000 });
    assert.equal(await webview.locator('#viewport:focus').count(), 1, 'the table lost the keyboard');
    await page.locator('.part.sidebar .monaco-list-row.selected[aria-label^="bias, "]').waitFor({ timeout: 15_000 });
    await page.keyboard.press('ArrowDown'); // still the table's keys
    await webview.locator('#viewport .row.selected[data-key="bn1.running_mean"]').waitFor({ timeout: 5_000 });
  });

  step('Find reveals a key deep in a 30,000-tensor file, loading the pages on its way, and highlights the key only', async () => {
    const large = expected.large_model;
    const target = `${large.layer_prefix}mlp.down_proj.weight`;
    const webview = await openInPage(large.file);
    await runCommand(page, 'pthscope: Find in Checkpoint…');
    await page.locator('.quick-input-widget input').fill(target.slice('model.'.length));
    const match = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${target.replace(/\./g, '\\.')}\\s*$`) }) }).first();
    await match.waitFor({ timeout: 30_000 });
    assert.ok(await match.locator('.label-name .highlight').count() > 0, 'the key is not highlighted');
    assert.equal(await page.locator('.quick-input-list .label-description .highlight').count(), 0, 'letters of a description are highlighted');
    await shot('21-find-highlight');
    await match.click();
    // layer 2,999 of 3,000: beyond the first page of 500 children
    await page.locator('.part.sidebar .monaco-list-row.selected[aria-label^="weight, [4] float16"]').waitFor({ timeout: 30_000 });
    await webview.locator(`#viewport .row.selected[data-key="${target}"]`).waitFor({ timeout: 15_000 });
    await webview.locator('#stats-key', { hasText: target }).waitFor({ timeout: 15_000 });
    await shot('22-find-deep-revealed');
  });

  step('the safety banner is one line with the verdict and counts, details behind it, red only when code would run', async () => {
    const webview = await openInPage(expected.whole_model.file);
    const banner = webview.locator('#safety');
    assert.match(await webview.locator('#safety-verdict').innerText(), /^Needs weights_only=False: 2 classes from demo_models \(not importable here\) \+ 6 torch\.nn classes$/);
    assert.equal(await banner.getAttribute('class'), 'banner unknown');
    assert.ok((await banner.boundingBox()).height < 40, 'the banner is more than one line');
    assert.equal(await webview.locator('.banner-details').isVisible(), false);
    await banner.locator('summary').click();
    await webview.locator('.banner-details', { hasText: expected.whole_model.class }).waitFor({ timeout: 5_000 });
    await shot('23-compact-banner-open');
    const hostile = await openInPage(expected.hostile.file);
    const verdict = await hostile.locator('#safety.dangerous #safety-verdict').innerText();
    assert.match(verdict, /^Would run code if loaded with weights_only=False: /);
    assert.ok(expected.hostile.dangerous_globals.every((name) => verdict.includes(name)), verdict);
  });

  step('at 1000×700 the page never scrolls sideways, and the values stay beside or below the table', async () => {
    await page.setViewportSize({ width: 1000, height: 700 });
    try {
      await showCheckpointTree(page);
      for (const file of [expected.large_model.file, expected.whole_model.file, expected.hostile.file, expected.lightning.file]) {
        const webview = await openInPage(file);
        await webview.locator('#viewport .row[data-key]').first().click();
        await webview.locator('#stats-key').waitFor({ timeout: 30_000 });
        await webview.locator('#stats-min, #stats-value, #stats-error').first().waitFor({ timeout: 30_000 });
        const layout = await webview.locator('body').evaluate(() => {
          const box = (id) => document.getElementById(id).getBoundingClientRect();
          return { scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
            table: box('table'), stats: box('stats'), height: window.innerHeight };
        });
        assert.ok(layout.scrollWidth <= layout.clientWidth, `${file}: the page scrolls sideways (${layout.scrollWidth} > ${layout.clientWidth})`);
        assert.ok(layout.stats.top >= 0 && layout.stats.bottom <= layout.height + 1, `${file}: the values are off screen ${JSON.stringify(layout)}`);
        assert.ok(layout.table.bottom > 60 && layout.table.top < layout.height - 60, `${file}: the table is off screen ${JSON.stringify(layout)}`);
        if (file === expected.large_model.file) {
          await shot('24-page-1000x700-large');
          // the key column is resizable: narrower, its keys are cut in the middle, whole in the tooltip
          const handle = await webview.locator('.row.header .col-key .resizer').boundingBox();
          await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
          await page.mouse.down();
          await page.mouse.move(handle.x - 120, handle.y + handle.height / 2, { steps: 5 });
          await page.mouse.up();
          const cut = webview.locator('#viewport .row[data-key] .col-key[title]', { hasText: '…' }).first();
          assert.match(await cut.innerText(), /…/, 'long keys are cut in the middle');
          // its tooltip: the whole key (and what the columns left out for room say)
          assert.equal((await cut.getAttribute('title')).split('\n')[0], await cut.locator('xpath=..').getAttribute('data-key'));
          await shot('24b-page-1000x700-key-narrowed');
          await webview.locator('.row.header .col-key .resizer').dblclick(); // back to its share of the width
        }
      }
      await shot('25-page-1000x700');
    } finally {
      await page.setViewportSize({ width: 1400, height: 900 });
    }
  });

  step('a page reads its file again when it is rewritten, and shows no error meanwhile', async () => {
    const webview = await openInPage('rewrite_me.pth');
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), expected.state_dict.tensors);
    const errors = webview.locator('#status.problem, #problems .problem.error, .error-text, #stats-error');
    // rewrite it as a training script would, in two writes with a pause between them
    const writer = execFileSync(PYTHON, ['-c', [
      'import io, sys, time, torch',
      'buffer = io.BytesIO(); torch.save({"step": torch.tensor(3), "w": torch.ones(2, 3), "b": torch.zeros(3)}, buffer)',
      'data = buffer.getvalue(); f = open(sys.argv[1], "wb")',
      'f.write(data[: len(data) // 2]); f.flush(); time.sleep(0.3); f.write(data[len(data) // 2 :]); f.close()',
    ].join('\n'), join(profile.ws, 'rewrite_me.pth')], { encoding: 'utf8' });
    assert.equal(writer, '');
    for (let i = 0; i < 40; i++) {
      assert.equal(await errors.count(), 0, 'the page showed an error while the file was rewritten');
      if (await webview.locator('#summary-tensors[data-value="3"]').count()) {
        break;
      }
      await page.waitForTimeout(150);
    }
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), 3);
    await webview.locator('#viewport .row[data-key="w"]').waitFor({ timeout: 10_000 });
    assert.equal(await errors.count(), 0);
    await showCheckpointTree(page);
    await treeRow('rewrite_me.pth').waitFor({ timeout: 10_000 });
    await treeRow('w').waitFor({ timeout: 10_000 }); // the tree followed
    await shot('26-reloaded-after-rewrite');
  });

  step('a page in an error state has a Retry; Restart Server refreshes open pages', async () => {
    const webview = await openInPage(expected.whole_model.file);
    mkdirSync(dirname(workspaceSettings()), { recursive: true });
    // the server restarts, and cannot start: that Python is not there yet
    writeFileSync(workspaceSettings(), JSON.stringify({ 'pthscope.interpreter': LATER_PYTHON }));
    const retry = webview.locator('#retry');
    await retry.waitFor({ timeout: 60_000 });
    await shot('27-retry');
    mkdirSync(dirname(LATER_PYTHON), { recursive: true });
    symlinkSync(PYTHON, LATER_PYTHON);
    await webview.locator('#summary').evaluate((summary) => { summary.dataset.old = 'yes'; });
    await retry.click();
    await webview.locator('#summary:not([data-old])').waitFor({ timeout: 60_000 }); // read again
    assert.equal(await webview.locator('#status.problem').count(), 0);
    // Restart Server: the open page is read again (its summary is new), with no error
    await webview.locator('#summary').evaluate((summary) => { summary.dataset.old = 'yes'; });
    await runCommand(page, 'pthscope: Restart Server');
    await webview.locator('#summary:not([data-old])').waitFor({ timeout: 60_000 });
    assert.equal(await webview.locator('#status.problem').count(), 0);
    rmSync(dirname(workspaceSettings()), { recursive: true, force: true });
  });

  step('a .bin checkpoint opens in its page on a single click; Open Checkpoint reuses the tab; working in a preview tab keeps it', async () => {
    await closeAll();
    await page.locator('.activitybar [aria-label^="Explorer"]').first().click();
    const binRow = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'pytorch_model.bin' }).first();
    await binRow.click();
    const webview = await pageOpened(page);
    assert.equal(Number(await webview.locator('#summary-tensors').getAttribute('data-value')), expected.state_dict.tensors);
    const binTabs = page.locator('.tabs-container .tab', { hasText: 'pytorch_model.bin' });
    assert.equal(await binTabs.count(), 1);
    await binRow.click({ button: 'right' });
    await page.getByRole('menuitem', { name: 'Open Checkpoint…' }).click();
    await page.waitForTimeout(1_000);
    await page.keyboard.press('Escape');
    assert.equal(await binTabs.count(), 1, 'Open Checkpoint opened a second tab');
    await shot('28-bin-opened');
    // a single click opens a preview (italic) tab; filtering in its page keeps it open
    await closeAll();
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'model.safetensors' }).first().click();
    const preview = await pageOpened(page);
    const tab = page.locator('.tabs-container .tab', { hasText: 'model.safetensors' }).first();
    await tab.locator('.monaco-icon-label.italic').waitFor({ timeout: 10_000 });
    await preview.locator('#filter').fill('fc');
    await page.waitForFunction(() => !document.querySelector('.tabs-container .tab .monaco-icon-label.italic'), null, { timeout: 10_000 });
  });

  step('the panel names the file of the active page, and empties when its last page closes', async () => {
    await openInPage(expected.whole_model.file);
    await showCheckpointTree(page);
    const fileRow = treeRow(expected.whole_model.file, 1);
    await fileRow.waitFor({ timeout: 15_000 });
    assert.match(await fileRow.getAttribute('aria-label'), /SmallResNet · 33\.4K trainable · 9\.8K frozen/);
    await closeAll();
    await page.locator('.part.sidebar .welcome-view-content', { hasText: 'Open a PyTorch checkpoint' }).waitFor({ timeout: 15_000 });
    assert.equal(await fileRow.count(), 0);
  });
});
