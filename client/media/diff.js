// @ts-check
// The comparison page (webview). Renders what the extension forwards from the server's
// pthscope/diff: `structure` (keys, shapes, dtypes, requires_grad: metadata only), then `rows`
// (tensors just compared, streamed), `progress`, and `values` (the whole comparison with its
// per-module summary). Two virtualised, sortable tables: modules and tensors. Every string from a
// file is set with textContent. Messages are {type, body}; it says `ready` first. esbuild bundles
// it with the page's DOM helpers (page/dom.js) into client/out/diff.js.
import { codicon, el, formatExact } from './page/dom.js';

const vscode = acquireVsCodeApi();
const ROW_HEIGHT = 24;
const OVERSCAN = 10;
const FILTER_DEBOUNCE_MS = 150;

/** How each status looks: label, codicon, class. The server decides the status. */
const STATUS = {
  identical: { label: 'identical', icon: 'pass', cls: 'st-identical' },
  changed: { label: 'changed', icon: 'diff-modified', cls: 'st-changed' },
  only_a: { label: 'only in A', icon: 'diff-removed', cls: 'st-only-a' },
  only_b: { label: 'only in B', icon: 'diff-added', cls: 'st-only-b' },
  shape: { label: 'shape changed', icon: 'warning', cls: 'st-structure' },
  dtype: { label: 'dtype changed', icon: 'symbol-numeric', cls: 'st-structure' },
  structure: { label: 'structure changed', icon: 'warning', cls: 'st-structure' },
  error: { label: 'not read', icon: 'error', cls: 'st-error' },
  matched: { label: 'not compared yet', icon: 'circle-outline', cls: 'st-pending' },
};
// Sort order of statuses: what a user looks for first.
const STATUS_RANK = { changed: 0, structure: 1, shape: 1, dtype: 2, only_a: 3, only_b: 4, error: 5, matched: 6, identical: 7 };

const MODULE_COLUMNS = [
  { id: 'name', title: 'Module', value: (m) => m.module || '(top level)', cell: (m) => m.module || '(top level)' },
  { id: 'status', title: 'Status', value: (m) => STATUS_RANK[m.status], cell: statusCell },
  { id: 'tensors', title: 'Tensors', numeric: true, value: (m) => m.tensors, cell: (m) => formatExact(m.tensors) },
  { id: 'identical', title: 'Identical', numeric: true, value: (m) => m.identical, cell: (m) => formatExact(m.identical) },
  { id: 'changed', title: 'Changed', numeric: true, value: (m) => m.changed, cell: (m) => formatExact(m.changed) },
  { id: 'only', title: 'Only A/B', numeric: true, value: (m) => m.only_a + m.only_b, cell: (m) => `${formatExact(m.only_a)} / ${formatExact(m.only_b)}` },
  { id: 'structure', title: 'Structure', tip: 'shape changes / dtype changes / requires_grad flips', numeric: true, value: (m) => m.shape_changed + m.dtype_changed + m.grad_changed,
    cell: (m) => `${m.shape_changed} / ${m.dtype_changed} / ${m.grad_changed}` },
  { id: 'maxabs', title: 'max |Δ|', numeric: true, value: (m) => m.max_abs_diff ?? -1, cell: (m) => formatValue(m.max_abs_diff) },
  { id: 'rel', title: 'max ‖Δ‖/‖A‖', numeric: true, value: (m) => m.max_rel_change ?? -1, cell: (m) => formatValue(m.max_rel_change) },
];
const TENSOR_COLUMNS = [
  { id: 'name', title: 'Tensor', value: (t) => t.name, cell: (t) => t.name },
  { id: 'status', title: 'Status', value: (t) => STATUS_RANK[t.status], cell: statusCell },
  { id: 'shape', title: 'Shape A → B', value: (t) => JSON.stringify([t.shape_a, t.shape_b]), cell: (t) => pair(t.shape_a, t.shape_b, formatShape) },
  { id: 'dtype', title: 'DType A → B', value: (t) => `${t.dtype_a}|${t.dtype_b}`, cell: (t) => pair(t.dtype_a, t.dtype_b, String) },
  { id: 'grad', title: 'requires_grad', value: (t) => (t.grad_changed ? 0 : 1), cell: gradCell },
  { id: 'elements', title: 'Changed', tip: 'elements that differ', numeric: true, value: (t) => (t.values ? t.values.changed : -1),
    cell: (t) => (t.values ? `${formatExact(t.values.changed)} of ${formatExact(t.values.numel)}` : '—') },
  { id: 'maxabs', title: 'max |Δ|', numeric: true, value: (t) => (t.values ? t.values.max_abs_diff ?? -1 : -1), cell: (t) => (t.values ? formatValue(t.values.max_abs_diff) : '—') },
  { id: 'rel', title: '‖Δ‖/‖A‖', numeric: true, value: (t) => (t.values ? t.values.rel_change ?? -1 : -1), cell: (t) => (t.values ? formatValue(t.values.rel_change) : '—') },
];

const state = {
  result: null,
  view: 'modules',
  filter: '',
  status: 'all',
  sort: { modules: { column: 'status', descending: false }, tensors: { column: 'status', descending: false } },
  rows: [],
  selected: -1,
  comparing: false,
  filterTimer: undefined,
};

// ---------- formatting ----------
function formatValue(v) {
  if (v === null || v === undefined) {
    return '—';
  }
  if (v === 0) {
    return '0';
  }
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-3 ? v.toExponential(3) : String(Number(v.toPrecision(5)));
}
function formatShape(shape) {
  return `[${shape.join(', ')}]`;
}
function pair(a, b, format) {
  if (a === null) {
    return `— → ${format(b)}`;
  }
  if (b === null) {
    return `${format(a)} → —`;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? format(a) : `${format(a)} → ${format(b)}`;
}
function statusCell(row) {
  const look = STATUS[row.status] || STATUS.matched;
  return { icon: look.icon, cls: look.cls, text: look.label, title: row.value_error || row.note || look.label };
}
function gradCell(t) {
  const flag = (v) => (v === null ? 'not stored' : String(v));
  if (t.requires_grad_a === null && t.requires_grad_b === null) {
    return '—';
  }
  return { icon: t.grad_changed ? 'arrow-swap' : undefined, cls: t.grad_changed ? 'st-structure' : '', text: t.grad_changed
    ? `${flag(t.requires_grad_a)} → ${flag(t.requires_grad_b)}` : flag(t.requires_grad_a ?? t.requires_grad_b) };
}

function stat(id, label, value, extraClass) {
  return el('div', { className: `stat ${extraClass || ''}` },
    el('span', { className: 'stat-label', text: label }),
    el('span', { id, className: 'stat-value', 'data-value': value, text: formatExact(value) }));
}

// ---------- header and summary ----------
function renderSides(result) {
  const side = (letter, s) => el('div', { className: 'side' },
    el('span', { className: 'side-letter', text: letter }),
    el('button', { className: 'link', id: `open-${letter.toLowerCase()}`, title: `Open ${s.file}`, text: s.file,
      onclick: () => vscode.postMessage({ type: 'open', body: { side: letter.toLowerCase() } }) }),
    el('span', { className: 'badge', text: s.format }),
    el('span', { className: 'muted', text: `${formatExact(s.tensors)} tensors` }));
  return el('section', { id: 'sides', 'aria-label': 'Files' }, side('A', result.a), side('B', result.b),
    result.notes.length ? el('ul', { className: 'notes muted' }, result.notes.map((n) => el('li', { text: n }))) : null);
}

function renderSummary(result) {
  const s = result.summary;
  const values = result.values
    ? [stat('summary-identical', 'Identical', s.identical, 'identical'), stat('summary-changed', 'Changed', s.changed, 'changed'),
      stat('summary-value-errors', 'Not read', s.value_errors), stat('summary-compared', 'Compared', s.compared)]
    : [el('p', { className: 'muted', text: 'Values not compared yet.' })];
  return el('section', { id: 'summary', 'aria-label': 'Summary' },
    el('div', { className: 'card' }, el('h2', { text: 'Keys' }),
      stat('summary-matched', 'Matched', s.matched), stat('summary-only-a', 'Only in A', s.only_a, 'only-a'),
      stat('summary-only-b', 'Only in B', s.only_b, 'only-b')),
    el('div', { className: 'card' }, el('h2', { text: 'Structure' }),
      stat('summary-shape', 'Shape changes', s.shape_changed), stat('summary-dtype', 'DType changes', s.dtype_changed),
      stat('summary-grad', 'requires_grad flips', s.grad_changed)),
    el('div', { className: 'card' }, el('h2', { text: 'Values' }), ...values, renderProgress()));
}

function renderProgress() {
  const box = el('div', { id: 'progress', className: 'progress-box' });
  updateProgress(box, null, '');
  return box;
}

function updateProgress(box, percentage, message) {
  if (!box) {
    return;
  }
  const parts = [];
  if (state.comparing) {
    parts.push(el('div', { className: 'progress-bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100',
      'aria-valuenow': percentage === null ? undefined : String(percentage) },
    el('span', { style: { width: `${percentage ?? 0}%` } })));
    parts.push(el('div', { className: 'progress-line' }, el('span', { className: 'muted', id: 'progress-message', text: message || 'Comparing values…' }),
      el('button', { id: 'stop', className: 'secondary', onclick: () => vscode.postMessage({ type: 'cancel' }) }, codicon('debug-stop'), el('span', { text: 'Stop' }))));
  } else if (state.result && !state.result.complete) {
    parts.push(el('div', { className: 'progress-line' }, el('span', { className: 'muted', text: message || 'The value comparison was stopped.' }),
      el('button', { id: 'compare-values', className: 'secondary', onclick: () => vscode.postMessage({ type: 'compareValues' }) },
        codicon('play'), el('span', { text: 'Compare values' }))));
  }
  box.replaceChildren(...parts);
}

// ---------- the tables ----------
let viewport;
let spacer;
let header;
let rowCount;
let filterInput;

function columns() {
  return state.view === 'modules' ? MODULE_COLUMNS : TENSOR_COLUMNS;
}

function renderTables() {
  filterInput = el('input', {
    id: 'filter', type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter by name', spellcheck: 'false', value: state.filter,
    oninput: () => {
      clearTimeout(state.filterTimer);
      state.filterTimer = setTimeout(() => { state.filter = filterInput.value; refresh(); }, FILTER_DEBOUNCE_MS);
    },
  });
  const statusSelect = el('select', { id: 'status-filter', 'aria-label': 'Show', onchange: (e) => { state.status = e.target.value; refresh(); } },
    [['all', 'All'], ['changed', 'Changed values'], ['identical', 'Identical'], ['structure', 'Structure changes'], ['only_a', 'Only in A'], ['only_b', 'Only in B']]
      .map(([value, label]) => el('option', { value, text: label })));
  const tab = (view, label) => el('button', { role: 'tab', id: `tab-${view}`, className: 'tab', 'aria-selected': String(state.view === view),
    onclick: () => { state.view = view; state.selected = -1; refresh(); } }, el('span', { text: label }));
  rowCount = el('span', { id: 'row-count', role: 'status', className: 'muted' });
  header = el('div', { className: 'row header', role: 'row' });
  spacer = el('div', { className: 'spacer' });
  viewport = el('div', { id: 'viewport', role: 'rowgroup', tabindex: '0', 'aria-label': 'Rows (arrow keys move; Enter on a module shows its tensors)',
    onscroll: () => requestAnimationFrame(renderRows), onkeydown: onKey }, spacer);
  return el('section', { id: 'tables', 'aria-label': 'Comparison' },
    el('div', { className: 'toolbar' },
      el('div', { role: 'tablist', className: 'tabs' }, tab('modules', 'Modules'), tab('tensors', 'Tensors')),
      el('div', { className: 'filter-box' }, codicon('filter'), filterInput), statusSelect, rowCount),
    el('div', { id: 'table', role: 'grid', 'aria-readonly': 'true' }, header, viewport));
}

function matchesStatus(row) {
  switch (state.status) {
    case 'all': return true;
    case 'structure': return ['shape', 'dtype', 'structure'].includes(row.status) || row.grad_changed > 0 || row.grad_changed === true;
    default: return row.status === state.status;
  }
}

function refresh() {
  if (!state.result || !viewport) {
    return;
  }
  const source = state.view === 'modules' ? state.result.modules : state.result.tensors;
  const needle = state.filter.toLowerCase();
  const name = state.view === 'modules' ? (m) => m.module : (t) => t.name;
  const rows = source.filter((r) => (!needle || name(r).toLowerCase().includes(needle)) && matchesStatus(r));
  const sort = state.sort[state.view];
  const column = columns().find((c) => c.id === sort.column) || columns()[0];
  const sign = sort.descending ? -1 : 1;
  rows.sort((x, y) => {
    const a = column.value(x);
    const b = column.value(y);
    const order = typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b));
    return sign * order || name(x).localeCompare(name(y));
  });
  state.rows = rows;
  for (const view of ['modules', 'tensors']) {
    document.getElementById(`tab-${view}`)?.setAttribute('aria-selected', String(state.view === view));
  }
  renderHeader();
  renderRows();
}

function renderHeader() {
  const sort = state.sort[state.view];
  header.style.gridTemplateColumns = gridColumns();
  header.replaceChildren(...columns().map((c) => {
    const active = sort.column === c.id;
    const button = el('button', { className: `sort${active ? ' active' : ''}${active && sort.descending ? ' descending' : ''}`, 'data-sort': c.id,
      title: `Sort by ${c.tip || c.title}`, onclick: () => toggleSort(c.id) }, el('span', { text: c.title }), codicon('arrow-small-down', 'sort-icon'));
    return el('div', { className: `cell${c.numeric ? ' numeric' : ''}`, role: 'columnheader',
      'aria-sort': active ? (sort.descending ? 'descending' : 'ascending') : 'none' }, button);
  }));
}

function gridColumns() {
  return state.view === 'modules'
    ? 'minmax(160px, 3fr) 130px 84px 88px 88px 92px 96px 96px 116px'
    : 'minmax(180px, 3fr) 130px minmax(110px, 1.2fr) 130px 110px 120px 96px 96px';
}

function toggleSort(column) {
  const sort = state.sort[state.view];
  const numeric = columns().find((c) => c.id === column)?.numeric;
  if (sort.column !== column) {
    state.sort[state.view] = { column, descending: Boolean(numeric) };
  } else {
    sort.descending = !sort.descending;
  }
  refresh();
}

function renderRows() {
  if (!viewport) {
    return;
  }
  const total = state.rows.length;
  spacer.style.height = `${total * ROW_HEIGHT}px`;
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(total, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW_HEIGHT) + OVERSCAN);
  const rendered = [];
  for (let i = first; i < last; i++) {
    rendered.push(renderRow(i, state.rows[i]));
  }
  spacer.replaceChildren(...rendered);
  const source = state.view === 'modules' ? state.result.modules : state.result.tensors;
  rowCount.textContent = `${formatExact(total)} of ${formatExact(source.length)} ${state.view}`;
  viewport.setAttribute('aria-rowcount', String(total));
}

function renderRow(index, data) {
  const row = el('div', {
    id: `row-${index}`, className: `row${index === state.selected ? ' selected' : ''}`, role: 'row', 'aria-rowindex': index + 1,
    'aria-selected': String(index === state.selected), style: { top: `${index * ROW_HEIGHT}px`, gridTemplateColumns: gridColumns() },
    onclick: () => select(index), ondblclick: () => open(index),
  });
  row.dataset.name = state.view === 'modules' ? data.module : data.name;
  row.dataset.status = data.status;
  for (const column of columns()) {
    const value = column.cell(data);
    const cell = el('div', { className: `cell${column.numeric ? ' numeric' : ''} col-${column.id}`, role: 'gridcell' });
    if (typeof value === 'object') {
      if (value.cls) {
        cell.classList.add(value.cls);
      }
      if (value.icon) {
        cell.append(codicon(value.icon));
      }
      cell.append(el('span', { text: value.text }));
      cell.title = value.title || value.text;
    } else {
      cell.textContent = value;
      cell.title = value;
    }
    row.append(cell);
  }
  if (state.view === 'tensors') {
    row.title = [data.key_a && `A: ${data.key_a}`, data.key_b && `B: ${data.key_b}`, data.note, data.value_error].filter(Boolean).join('\n');
  }
  return row;
}

function select(index) {
  if (state.rows.length === 0) {
    return;
  }
  state.selected = Math.max(0, Math.min(state.rows.length - 1, index));
  const top = state.selected * ROW_HEIGHT;
  if (top < viewport.scrollTop) {
    viewport.scrollTop = top;
  } else if (top + ROW_HEIGHT > viewport.scrollTop + viewport.clientHeight) {
    viewport.scrollTop = top + ROW_HEIGHT - viewport.clientHeight;
  }
  renderRows();
}

/** A module row opens its tensors. */
function open(index) {
  const data = state.rows[index];
  if (state.view === 'modules' && data) {
    state.view = 'tensors';
    state.filter = data.module ? `${data.module}.` : '';
    filterInput.value = state.filter;
    state.selected = -1;
    refresh();
  }
}

function onKey(event) {
  const pageRows = Math.max(1, Math.floor(viewport.clientHeight / ROW_HEIGHT) - 1);
  const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: pageRows, PageUp: -pageRows };
  if (event.key in moves) {
    select(Math.max(0, state.selected) + moves[event.key]);
  } else if (event.key === 'Home') {
    select(0);
  } else if (event.key === 'End') {
    select(state.rows.length - 1);
  } else if (event.key === 'Enter') {
    open(state.selected);
  } else {
    return;
  }
  event.preventDefault();
}

// ---------- messages ----------
function show(result) {
  state.result = result;
  const app = document.getElementById('app');
  document.getElementById('status')?.remove();
  for (const id of ['sides', 'summary', 'tables', 'errors']) {
    document.getElementById(id)?.remove();
  }
  const errors = [...result.a.errors.map((m) => `A: ${m}`), ...result.b.errors.map((m) => `B: ${m}`)];
  app.append(...[
    renderSides(result),
    errors.length ? el('section', { id: 'errors' }, errors.map((m) => el('div', { className: 'problem error', role: 'alert' }, codicon('error'), el('span', { text: m })))) : null,
    renderSummary(result),
    renderTables(),
  ].filter(Boolean));
  app.setAttribute('aria-busy', 'false');
  refresh();
}

function onRows(body) {
  if (!state.result) {
    return;
  }
  const byName = new Map(body.tensors.map((t) => [t.name, t]));
  state.result.tensors = state.result.tensors.map((t) => byName.get(t.name) || t);
  updateProgress(document.getElementById('progress'), body.total ? Math.round((100 * body.done) / body.total) : null,
    `${formatExact(state.result.tensors.filter((t) => t.values).length)} tensors compared`);
  if (state.view === 'tensors') {
    refresh();
  }
}

function onFailed(body) {
  state.comparing = false;
  const status = document.getElementById('status') || el('p', { id: 'status' });
  status.replaceChildren(codicon('error'), el('span', { text: ` ${body.message}` }));
  status.className = 'problem error';
  status.setAttribute('role', 'alert');
  if (!status.isConnected) {
    document.querySelector('header.title').after(status);
  }
  updateProgress(document.getElementById('progress'), null, '');
  document.getElementById('app').setAttribute('aria-busy', 'false');
}

window.addEventListener('message', (event) => {
  const { type, body } = event.data;
  switch (type) {
    case 'structure': show(body); break;
    case 'comparing': state.comparing = true; updateProgress(document.getElementById('progress'), 0, ''); break;
    case 'rows': onRows(body); break;
    case 'progress': updateProgress(document.getElementById('progress'), body.percentage, body.message); break;
    case 'values': state.comparing = false; show(body); break;
    case 'stopped': state.comparing = false; if (state.result) { state.result.complete = false; } updateProgress(document.getElementById('progress'), null, 'The value comparison was stopped.'); break;
    case 'failed': onFailed(body); break;
  }
});
window.addEventListener('resize', () => requestAnimationFrame(renderRows));
vscode.postMessage({ type: 'ready' });
