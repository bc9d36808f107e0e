// @ts-check
// The checkpoint page (webview). Renders what the extension forwards from the server: `init` (a
// pthscope/open result; again after the file changed or the server restarted, keeping the view),
// `tensors` pages for the table (table.js), `stats` of the selected tensor in the values pane
// beside or below the table, never pushing it away (values.js), `reveal` (a node chosen in the
// side panel or Find: a tensor is selected and shown, a container filters the table), `changed`
// (the file is being read again: wait, quietly), `failed` (with Retry) and, in Restricted Mode,
// `trust`; after a scan, `scanned` (scan.js), and a tree node's `moduleStats`. It knows no file formats. Text from the file enters the DOM only as textContent.
// Messages are {type, body}; it says `ready` first. esbuild bundles these modules into
// client/out/page.js, which the page's HTML carries inline under its nonce (pageHtml.ts).
import { codicon, el } from './dom.js';
import { renderFlagsNote, renderPartOf, renderProblems, renderSafety, renderSummary } from './overview.js';
import { onScanned, renderScan } from './scan.js';
import { post, state } from './state.js';
import { applyQuery, filterTo, hasTable, locate, onTensors, onTensorsFailed, renderRows, renderTable, resetTable, selectedTensor } from './table.js';
import { dropStatsPane, onModuleStats, onStats, renderStatsPane, showStats } from './values.js';

/** The page's state line: reading, reading again (the file changed), failed (with Retry). */
function setStatus(text, kind, withRetry) {
  const status = document.getElementById('status');
  status.className = kind === 'error' ? 'problem error' : `page-status ${kind || ''}`;
  status.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  status.replaceChildren(
    codicon(kind === 'error' ? 'error' : 'sync', kind === 'error' ? '' : 'codicon-modifier-spin'),
    el('span', { className: 'status-text', text }),
    withRetry ? el('button', { id: 'retry', className: 'button', onclick: retry }, codicon('refresh'), el('span', { text: 'Retry' })) : null);
  status.hidden = false;
}
function clearStatus() {
  const status = document.getElementById('status');
  status.className = 'page-status';
  status.setAttribute('role', 'status');
  status.replaceChildren();
  status.hidden = true;
}
function retry() {
  setStatus('Reading the checkpoint again… nothing in it is executed.');
  post('retry');
}

function onInit(result) {
  const receivedAt = Date.now();
  const again = state.result !== null;
  const keep = again ? (selectedTensor()?.path ?? state.selectPath) : state.selectPath;
  const statsPath = state.statsPath;
  state.result = result;
  state.waiting = false;
  state.total = result.summary.tensors;
  state.statsPath = null;
  resetTable(result);
  dropStatsPane();
  const app = document.getElementById('app');
  document.getElementById('format').textContent = result.format;
  clearStatus();
  for (const old of app.querySelectorAll(':scope > section:not(#restricted-mode)')) {
    old.remove();
  }
  const parts = [renderPartOf(result), renderProblems(result), renderSafety(result), renderFlagsNote(result)];
  if (result.root !== null || result.summary.tensors > 0) {
    parts.push(renderSummary(result), el('section', { id: 'workspace', 'aria-label': 'Tensors' }, ...renderTable(), renderStatsPane()));
  } else if (result.errors.length > 0) {
    setStatus('This file could not be read (see above).', 'error', true);
  }
  app.append(...parts.filter(Boolean));
  state.marks.clear();
  renderScan(result.scan || null, null);
  app.setAttribute('aria-busy', 'false');
  const drawnAt = Date.now();
  requestAnimationFrame(() => post('shown', { what: 'summary', at: Date.now(), receivedAt, drawnAt }));
  if (hasTable()) {
    state.firstRowsFollow = result.firstRowsFollow === true;
    applyQuery(state.filter, state.sort, state.descending, keep);
    state.firstRowsFollow = false;
    if (again && statsPath) {
      showStats(statsPath, null);
    }
    if (state.pendingReveal) {
      onReveal(state.pendingReveal);
      state.pendingReveal = null;
    }
  }
}

function onFailed(body) {
  state.waiting = false;
  setStatus(`Could not read this file: ${body.message}`, 'error', true);
  document.getElementById('app').setAttribute('aria-busy', 'false');
}

/** The file changed on disk (or the server restarts): say so, and wait for `init`. */
function onChanged(body) {
  state.waiting = true;
  setStatus(body.why, 'waiting');
  renderRows();
}

/** Restricted Mode's note under the title (body null: trusted, no note). */
function onTrust(body) {
  document.getElementById('restricted-mode')?.remove();
  if (!body) {
    return;
  }
  const note = el('section', { id: 'restricted-mode', className: 'restricted', 'aria-label': 'Restricted Mode' },
    codicon('shield'),
    el('div', {},
      el('p', { text: body.text }),
      body.details.length ? el('ul', {}, body.details.map((line) => el('li', { text: line }))) : null));
  document.querySelector('header.title').after(note);
}

/** A node chosen in the side panel or Find: a tensor is selected and shown; a container filters the table to its tensors. */
function onReveal(body) {
  if (!hasTable()) {
    state.pendingReveal = body;
    return;
  }
  if (body.tensor) {
    state.statsPath = null;
    locate(body.path, true);
  } else {
    filterTo(body.key ? `${body.key}.` : '');
  }
}

window.addEventListener('message', (event) => {
  const { type, body } = event.data;
  switch (type) {
    case 'init': onInit(body); break;
    case 'failed': onFailed(body); break;
    case 'changed': onChanged(body); break;
    case 'tensors': onTensors(body); break;
    case 'tensorsFailed': onTensorsFailed(body); break;
    case 'reveal': onReveal(body); break;
    case 'stats': onStats(body); break;
    case 'trust': onTrust(body); break;
    case 'scanned': onScanned(body); break;
    case 'moduleStats': onModuleStats(body); break;
  }
});
window.addEventListener('resize', () => requestAnimationFrame(renderRows));
post('ready', { loadingAt: performance.timeOrigin, readyAt: Date.now() });
