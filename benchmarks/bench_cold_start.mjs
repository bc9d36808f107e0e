// Cold start in a real VS Code: from opening a checkpoint to its first rows on the page.
//
//   node benchmarks/bench_cold_start.mjs [--runs 5] [--file whole_model.pth] [--mode reload|fresh|both]
//                                        [--activation startup|open] [--vsix A.vsix,B.vsix] [--check] [--keep]
//
// Every run starts pthscope cold: a new extension host (nothing activated, no server running),
// then the checkpoint is picked in Quick Open once the workbench shows the explorer; the clock
// starts at that click and stops when the page has drawn its first table rows (the page's own
// clock). The breakdown comes from the extension's log: its `startup: <mark> +N ms at <epoch>`
// lines (client/src/startupTimeline.ts), the server's worker lines and the extension host's
// activation line, all on the click's clock.
//
// Modes: `reload` (default) is "Developer: Reload Window" in a code-server and a browser that
// have shown a pthscope page before — what a user meets in a new or reloaded window: a new
// extension host, a new pthscope server, the browser's webview service worker already there.
// `fresh` is a new code-server profile (the .vsix just installed) in a brand-new browser
// profile: the first webview that browser ever shows waits for VS Code to install its webview
// service worker (2-3 s on this machine, before any pthscope code runs in the page).
// Activation: `startup` (default) is the demo workspace (scripts/make_demo.py), whose checkpoints
// activate pthscope as the window opens (`workspaceContains`), so its server starts while the
// workbench loads; `open` is a workspace holding only FILE renamed to FILE.tar (no activation
// event matches it), so that opening the page is what activates pthscope: everything from the
// click on. The operating system's file cache is warm.
// --vsix measures those packages instead of this checkout, in turns (before/after comparisons on
// a machine others share); each run has its own profile and browser. --check exits 1 when the
// median of the (last package's) reload runs is over 2 s (issue 9's target). Needs
// scripts/setup.sh and scripts/setup-vscode.sh (as the e2e test does); E2E_ROOT as there. --keep
// leaves the profiles (their logs) in E2E_ROOT/bench-cold-start.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { basename, join } from 'node:path';
import {
  E2E_ROOT, freePort, freshProfile, installExtension, logFiles, REPO, startCodeServer, stopCodeServer, workbenchSettings,
} from '../tests/e2e/codeServer.mjs';

const TARGET_MS = 2000;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 && args[at + 1] ? args[at + 1] : fallback;
};
const RUNS = Number(option('--runs', '5'));
const DEMO_FILE = option('--file', 'whole_model.pth');
const FILE = option('--activation', 'startup') === 'open' ? `${DEMO_FILE}.tar` : DEMO_FILE;
const MODES = { reload: ['reload'], fresh: ['fresh'], both: ['reload', 'fresh'] }[option('--mode', 'reload')];
const ACTIVATION = option('--activation', 'startup');
const CHECK = args.includes('--check');
const KEEP = args.includes('--keep');

const { chromium } = createRequire(join(E2E_ROOT, 'tools', 'package.json'))('playwright-core');
const PYTHON = join(REPO, '.venv', 'bin', 'python');
const WORK = join(E2E_ROOT, 'bench-cold-start');
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** `2026-12-01 10:24:47.200 [info] text` → [epoch ms, text] (log times are local). */
function logLines(file) {
  const lines = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) \[\w+\] (.*)$/.exec(line);
    if (match) {
      lines.push([new Date(`${match[1]}T${match[2]}`).getTime(), match[3]]);
    }
  }
  return lines;
}

/** What happened when, in ms after the click, from the extension's and the extension host's logs. */
function breakdown(profile, clicked, since) {
  const events = [];
  for (const file of logFiles(profile, /exthost\.log$/)) {
    for (const [time, text] of logLines(file).filter(([t]) => t >= since)) {
      if (/ExtensionService#_doActivateExtension pthscope\.pthscope/.test(text)) {
        events.push(['extension host activates pthscope', time]);
      }
    }
  }
  for (const file of logFiles(profile, /^pthscope\.log$/)) {
    for (const [time, text] of logLines(file).filter(([t]) => t >= since)) {
      const mark = /startup: ([\w ]+?) \+-?\d+ ms at (\d+)/.exec(text);
      const worker = /(structure|values) worker \d+ started/.exec(text);
      const read = /store: read .*? in ([\d.]+) s/.exec(text);
      if (mark && Number(mark[2]) >= since) {
        events.push([mark[1], Number(mark[2])]); // the mark's own clock, not the log's write time
      } else if (worker && !mark) {
        events.push([`${worker[1]} worker started (logged)`, time]);
      } else if (read && !events.some(([name]) => name.startsWith('file parsed'))) {
        events.push([`file parsed (${Math.round(Number(read[1]) * 1000)} ms in the worker; logged)`, time]);
      }
    }
  }
  return events.map(([name, time]) => [name, time - clicked]).sort((a, b) => a[1] - b[1]);
}

/** Picks FILE in Quick Open; returns the click's time and how long until its first rows were drawn. */
async function openFromQuickOpen(page, profile, since) {
  await page.locator('.explorer-folders-view .monaco-list-row', { hasText: FILE }).waitFor({ timeout: 120_000 });
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(FILE);
  const entry = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${FILE.replace(/\./g, '\\.')}\\s*$`) }) }).first();
  await entry.waitFor({ timeout: 15_000 });
  const clicked = Date.now();
  await entry.click();
  const webview = page.frameLocator('iframe.webview.ready:visible').frameLocator('iframe#active-frame');
  try {
    await webview.locator('#viewport .row[data-key]').first().waitFor({ timeout: 60_000 });
  } catch (error) {
    await page.screenshot({ path: join(E2E_ROOT, 'bench-cold-start-failure.png') }).catch(() => undefined);
    if (await page.getByText('The file is not displayed in the text editor').isVisible()) {
      // clicked before the workbench knew pthscope's editor, and nothing activated pthscope to fix it
      return { total: undefined, events: [], failure: 'opened in the text editor (the workbench did not know pthscope\'s editor yet)' };
    }
    throw error;
  }
  const seen = Date.now() - clicked;
  await page.waitForTimeout(1000); // the last log lines
  const events = breakdown(profile, clicked, since); // this extension host's only
  // the page's own clock says when its rows were drawn (the locator above polls coarsely)
  const total = events.find(([event]) => event === 'first rows shown')?.[1] ?? seen;
  return { total, events };
}

async function newSession(vsix, template, name) {
  const profile = freshProfile(join(WORK, name), workbenchSettings({ 'pthscope.interpreter': PYTHON }));
  rmSync(profile.ws, { recursive: true, force: true });
  cpSync(template, profile.ws, { recursive: true });
  installExtension(profile, vsix);
  const server = await startCodeServer(profile, await freePort());
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  const close = async () => {
    await browser.close().catch(() => undefined);
    await stopCodeServer(server);
  };
  return { profile, server, page, close };
}

/**
 * One cold start of `vsix`. `fresh`: a new profile and browser, the click the first thing.
 * `reload`: the same, but a checkpoint is opened once untimed (the browser's first webview;
 * Python's compiled modules), then "Reload Window" gives a new extension host and server.
 */
async function oneRun(vsix, template, name, mode) {
  const session = await newSession(vsix, template, name);
  try {
    let since = Date.now();
    await session.page.goto(session.server.url, { waitUntil: 'domcontentloaded' });
    if (mode === 'reload') {
      await openFromQuickOpen(session.page, session.profile, 0);
      await session.page.keyboard.press('Control+P');
      await session.page.locator('.quick-input-widget input').fill('>View: Close All Editors');
      await session.page.keyboard.press('Enter');
      await session.page.waitForTimeout(500);
      since = Date.now();
      await session.page.reload({ waitUntil: 'domcontentloaded' });
    }
    const load = loadavg()[0];
    return { ...(await openFromQuickOpen(session.page, session.profile, since)), load };
  } finally {
    await session.close();
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main() {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  let extensions = option('--vsix', '').split(',').filter(Boolean).map((file) => ({ label: basename(file), file }));
  if (extensions.length === 0) {
    const vsix = join(WORK, 'pthscope.vsix');
    execFileSync('bash', [join(REPO, 'scripts', 'package.sh'), vsix], { stdio: 'inherit' });
    extensions = [{ label: 'this checkout', file: vsix }];
  }
  const demo = join(WORK, 'demo');
  execFileSync(PYTHON, [join(REPO, 'scripts', 'make_demo.py'), demo], { stdio: 'ignore' });
  let template = demo;
  if (ACTIVATION === 'open') {
    template = join(WORK, 'single');
    mkdirSync(template, { recursive: true });
    cpSync(join(demo, DEMO_FILE), join(template, FILE));
  }
  let missed = false;
  for (const mode of MODES) {
    const totals = new Map(extensions.map((e) => [e.label, []]));
    for (let run = 1; run <= RUNS; run++) {
      // interleaved, in turns, so that the load of a shared machine falls on each alike
      const order = run % 2 === 1 ? extensions : [...extensions].reverse();
      for (const extension of order) {
        const { total, events, load, failure } = await oneRun(extension.file, template, `${mode}-${run}`, mode);
        if (failure) {
          console.log(`\n${mode}, ${extension.label}, run ${run} (load ${load.toFixed(1)}): not counted: ${failure}`);
          continue;
        }
        totals.get(extension.label).push(total);
        console.log(`\n${mode}, ${extension.label}, run ${run} (load ${load.toFixed(1)}): ${FILE} opened → first rows in ${total} ms`);
        for (const [event, at] of events) {
          console.log(`  ${String(at).padStart(6)} ms  ${event}`);
        }
      }
    }
    console.log('');
    for (const [label, values] of totals) {
      const m = median(values);
      const last = label === extensions[extensions.length - 1].label;
      missed ||= mode === 'reload' && last && m > TARGET_MS;
      console.log(`${FILE}, ${mode}, activation at ${ACTIVATION}, ${label}: opening → first rows, ${values.length} cold starts: median ${m} ms `
        + `(min ${Math.min(...values)}, max ${Math.max(...values)})${mode === 'reload' ? `; target ≤ ${TARGET_MS} ms${m <= TARGET_MS ? '' : '  MISSED'}` : ''}`);
    }
  }
  if (!KEEP) {
    rmSync(WORK, { recursive: true, force: true });
  }
  if (CHECK && missed) {
    process.exitCode = 1;
  }
}

await main();
