// @ts-check
// The tensor table: virtualised (only the rows on screen are in the DOM; pages of 500 come from
// pthscope/tensors), filtered and sorted by the server, resizable columns (some give way in a
// narrow table), keys cut in the middle, the keyboard's moves, and selecting a tensor the side
// panel or Find chose (`rowOf`: where it is in the current filter and order).
import { codicon, countOf, el, formatBytes, formatExact, middleEllipsis } from './dom.js';
import { interacted, post, state, vscode } from './state.js';
import { showStats } from './values.js';

const ROW_HEIGHT = 24; // also the sticky header's height (page.css --row-height)
const PAGE_SIZE = 500;
/** The id of the first page the extension sends right behind `init` (checkpointPage.ts). */
const FIRST_ROWS_REQUEST = 0;
const OVERSCAN = 10;
const FILTER_DEBOUNCE_MS = 200;
const FOLLOW_SELECTION_MS = 250;
const KEY_MIN_WIDTH = 120;
const MIN_COLUMN_WIDTH = 48;

/**
 * Columns of the tensor table: `sort` names the server's sort key, `width` the default width in
 * px (the key column takes the rest); `flags`: shown only when the file stores requires_grad.
 */
export const COLUMNS = [
  { id: 'key', title: 'Key', sort: 'key', cell: (t) => ({ text: t.key }) },
  { id: 'shape', title: 'Shape', sort: 'shape', width: 130, cell: shapeCell },
  { id: 'dtype', title: 'DType', sort: 'dtype', width: 84, cell: (t) => ({ text: t.dtype }) },
  { id: 'grad', title: 'requires_grad', sort: 'grad_state', width: 124, flags: true, cell: gradCell },
  { id: 'role', title: 'Role', sort: 'role', width: 104, cell: roleCell },
  { id: 'numel', title: 'Numel', sort: 'numel', width: 88, numeric: true, cell: (t) => ({ text: formatExact(t.numel) }) },
  { id: 'bytes', title: 'Size', sort: 'nbytes', width: 76, numeric: true, cell: (t) => ({ text: formatBytes(t.nbytes) }) },
  { id: 'location', title: 'Device', sort: 'location', width: 72, cell: (t) => ({ text: t.location }) },
];
const DESCENDING_FIRST = new Set(['numel', 'nbytes']);
/** Columns left out, in this order, while the key would get less than KEY_SHARE of a narrow table (their values go to the key's tooltip). */
const HIDDEN_WHEN_NARROW = ['location', 'role', 'numel'];
const KEY_SHARE = 0.4;

/** A distributed tensor's piece says what it is a piece of; the title, how it is split. */
function shapeCell(t) {
  const text = `[${t.shape.join(', ')}]`;
  const sharding = t.sharding;
  if (!sharding) {
    return { text };
  }
  return { text: sharding.local ? `${text} of [${sharding.global_shape.join(', ')}]` : text, title: shardingText(t) };
}

function shardingText(t) {
  const s = t.sharding;
  if (!s) {
    return '';
  }
  const how = [s.kind, ...s.placements, s.mesh].filter(Boolean).join(' · ');
  const files = new Set(s.chunks.map((c) => partName(c.part)).filter(Boolean));
  const where = s.local ? `rank ${s.rank ?? '?'}'s piece of [${s.global_shape.join(', ')}]`
    : `${countOf(s.chunks.length, 'chunk')}${files.size ? ` in ${[...files].join(', ')}` : ''}`;
  return `${how}: ${where}`;
}

/** The file name of a part of a multi-file checkpoint ('': the checkpoint's own file). */
function partName(part) {
  const parts = state.result ? state.result.parts : [];
  return part === null || part === undefined || !parts[part] ? '' : parts[part].file.split(/[\\/]/).pop();
}

const ROLE_CELLS = { parameter: 'parameter', buffer: 'buffer', optimizer_state: 'optimizer state', other: 'other' };
function roleCell(t) {
  const usual = t.kind === 'tensor' || (t.kind === t.role);
  return { text: ROLE_CELLS[t.role] || t.role, title: usual ? undefined : `saved as ${t.kind === 'ndarray' ? 'a numpy array' : `a ${t.kind}`}` };
}
function gradCell(t) {
  if (t.role === 'buffer') {
    return { icon: 'database', cls: 'grad-buffer', text: 'buffer', title: 'a buffer: no gradient' };
  }
  if (t.role !== 'parameter') {
    return { icon: 'dash', cls: 'grad-unknown', text: '—', title: 'not a model parameter' };
  }
  if (t.grad_state === 'trainable') {
    return { icon: 'flame', cls: 'grad-trainable', text: 'trainable' };
  }
  if (t.grad_state === 'frozen') {
    return { icon: 'lock', cls: 'grad-frozen', text: 'frozen' };
  }
  return { icon: 'circle-outline', cls: 'grad-unknown', text: 'not saved', title: 'this tensor was saved without its requires_grad' };
}

function remember() {
  vscode.setState({ widths: state.widths, filter: state.filter, sort: state.sort, descending: state.descending, selectedPath: selectedTensor()?.path ?? state.selectPath });
}

let table;
let viewport;
let spacer;
let rowCount;
let filterInput;
let headerButtons = [];

/** The toolbar (filter, row count) and the table, for the page's workspace section. */
export function renderTable() {
  filterInput = el('input', {
    id: 'filter', type: 'search', placeholder: 'Filter tensors by key (* wildcards)', 'aria-label': 'Filter tensors by key',
    spellcheck: 'false', value: state.filter, oninput: () => { interacted(); scheduleFilter(filterInput.value); },
    onkeydown: (e) => { if (e.key === 'ArrowDown') { e.preventDefault(); viewport.focus(); select(Math.max(0, state.selected)); } },
  });
  filterInput.value = state.filter;
  rowCount = el('span', { id: 'row-count', role: 'status', className: 'muted' });
  headerButtons = [];
  const header = el('div', { className: 'row header', role: 'row' });
  spacer = el('div', { className: 'spacer' });
  viewport = el('div', {
    id: 'viewport', role: 'rowgroup', tabindex: '0',
    'aria-label': 'Tensors (arrow keys move and show the values; Enter also selects it in the side panel; double-click reveals it there)',
    onscroll: () => requestAnimationFrame(renderRows), onkeydown: onTableKey,
  }, header, spacer);
  table = el('div', { id: 'table', role: 'grid', 'aria-readonly': 'true' }, viewport);
  state.shown = [];
  new ResizeObserver(() => requestAnimationFrame(fitColumns)).observe(table); // also its first layout
  const scan = el('button', { id: 'scan-button', className: 'secondary', title: 'Read every tensor and report NaN, inf, extreme values and all-zero tensors',
    onclick: () => post('scan') }, codicon('search'), el('span', { text: 'Scan for NaN/Inf' }));
  return [el('div', { className: 'toolbar' }, el('div', { className: 'filter-box' }, codicon('filter'), filterInput), rowCount, scan), table];
}

/** A new `init`: the table will be rendered anew, with this file's columns (requires_grad only where the file stores it). */
export function resetTable(result) {
  const p = result.summary.roles.parameter;
  state.columns = COLUMNS.filter((c) => !c.flags || p.not_stored < p.elements || p.tensors === 0);
  state.pages.clear();
  state.inFlight.clear();
  table = undefined;
  viewport = undefined;
}

export function hasTable() {
  return viewport !== undefined;
}

/** The table filtered to `filter` (a container chosen in the side panel: its key and a dot). */
export function filterTo(filter) {
  filterInput.value = filter;
  applyQuery(filter, state.sort, state.descending);
}

function headerCell(column) {
  const cell = el('div', { className: `cell col-${column.id}${column.numeric ? ' numeric' : ''}`, role: 'columnheader', 'aria-sort': 'none' });
  const button = el('button', { className: 'sort', 'data-sort': column.sort, title: `Sort by ${column.title}`, onclick: () => { interacted(); toggleSort(column.sort); } },
    el('span', { text: column.title }), codicon('arrow-small-down', 'sort-icon'));
  headerButtons.push(button);
  cell.append(button, el('span', {
    className: 'resizer', role: 'separator', 'aria-orientation': 'vertical', title: `Resize ${column.title} (double-click: default width)`,
    onpointerdown: (e) => startResize(e, column), ondblclick: () => { delete state.widths[column.id]; fitColumns(); remember(); },
  }));
  return cell;
}

function columnWidth(column) {
  return state.widths[column.id] ?? column.width;
}

/** Which columns fit: in a narrow table some give way (HIDDEN_WHEN_NARROW) so that keys stay readable; a column the user sized stays. */
function fitColumns() {
  if (!table) {
    return;
  }
  const available = table.clientWidth;
  if (available === 0) {
    return; // not laid out yet: the observer calls again
  }
  let shown = state.columns;
  const others = (columns) => columns.reduce((sum, c) => sum + (c.id === 'key' ? 0 : columnWidth(c)), 0);
  for (const id of HIDDEN_WHEN_NARROW) {
    if (available - others(shown) >= Math.max(KEY_MIN_WIDTH, available * KEY_SHARE)) {
      break;
    }
    if (state.widths[id] === undefined) {
      shown = shown.filter((c) => c.id !== id);
    }
  }
  if (shown.length !== state.shown.length || shown.some((c, i) => c !== state.shown[i])) {
    state.shown = shown;
    headerButtons = [];
    viewport.querySelector('.row.header').replaceChildren(...shown.map(headerCell));
    markSort();
  }
  applyColumnWidths();
}

/** The grid's columns: the key takes what the others leave, unless the user sized it. */
function applyColumnWidths() {
  const template = state.shown.map((c) => (c.id === 'key' && state.widths.key === undefined ? `minmax(${KEY_MIN_WIDTH}px, 1fr)` : `${columnWidth(c)}px`));
  const least = state.shown.reduce((sum, c) => sum + (c.id === 'key' ? state.widths.key ?? KEY_MIN_WIDTH : columnWidth(c)), 0);
  table.style.setProperty('--columns', template.join(' '));
  table.style.setProperty('--table-min-width', `${least}px`);
  requestAnimationFrame(renderRows);
}

function startResize(event, column) {
  event.preventDefault();
  event.stopPropagation();
  interacted();
  const handle = event.currentTarget;
  const start = event.clientX;
  const from = handle.parentElement.getBoundingClientRect().width;
  handle.setPointerCapture(event.pointerId);
  const move = (e) => {
    state.widths[column.id] = Math.max(column.id === 'key' ? KEY_MIN_WIDTH : MIN_COLUMN_WIDTH, Math.round(from + e.clientX - start));
    applyColumnWidths();
  };
  const end = () => {
    handle.removeEventListener('pointermove', move);
    handle.removeEventListener('pointerup', end);
    remember();
  };
  handle.addEventListener('pointermove', move);
  handle.addEventListener('pointerup', end);
}

function scheduleFilter(value) {
  clearTimeout(state.filterTimer);
  state.filterTimer = setTimeout(() => applyQuery(value, state.sort, state.descending), FILTER_DEBOUNCE_MS);
}

function toggleSort(sort) {
  if (state.sort !== sort) {
    applyQuery(state.filter, sort, DESCENDING_FIRST.has(sort));
  } else if (state.descending === DESCENDING_FIRST.has(sort)) {
    applyQuery(state.filter, sort, !state.descending);
  } else {
    applyQuery(state.filter, 'index', false);
  }
}

/** A new filter or order: the table starts over; the tensor at `keep` (default: the selected one) stays selected if it is in it. */
export function applyQuery(filter, sort, descending, keep = selectedTensor()?.path ?? state.selectPath) {
  state.filter = filter;
  state.sort = sort;
  state.descending = descending;
  state.generation += 1;
  state.pages.clear();
  state.inFlight.clear();
  state.selected = -1;
  markSort();
  viewport.scrollTop = 0;
  rowCount.replaceChildren();
  remember();
  requestPage(0);
  if (keep) {
    locate(keep, false);
  }
  renderRows();
}

function markSort() {
  for (const button of headerButtons) {
    const active = button.dataset.sort === state.sort;
    button.parentElement.setAttribute('aria-sort', active ? (state.descending ? 'descending' : 'ascending') : 'none');
    button.classList.toggle('active', active);
    button.classList.toggle('descending', active && state.descending);
  }
}

function tensorsRequest(body) {
  const requestId = state.nextRequestId++;
  post('tensors', { requestId, filter: state.filter, sort: state.sort, descending: state.descending, ...body });
  return requestId;
}

function requestPage(page) {
  if (state.waiting || state.pages.has(page) || [...state.inFlight.values()].some((r) => r.page === page && r.generation === state.generation)) {
    return;
  }
  if (page === 0 && state.firstRowsFollow && state.filter === '' && state.sort === 'index' && !state.descending) {
    state.inFlight.set(FIRST_ROWS_REQUEST, { page, generation: state.generation }); // on its way behind `init`
    return;
  }
  const requestId = tensorsRequest({ offset: page * PAGE_SIZE, limit: PAGE_SIZE });
  state.inFlight.set(requestId, { page, generation: state.generation });
}

/** Asks where the tensor at `path` is in this filter and order, to select it (and show its values). */
export function locate(path, showValues) {
  state.selectPath = path;
  if (state.waiting) {
    return;
  }
  const requestId = tensorsRequest({ offset: 0, limit: 0, rowOf: path });
  state.inFlight.set(requestId, { locate: path, showValues, generation: state.generation });
}

export function onTensors(body) {
  const request = state.inFlight.get(body.requestId);
  state.inFlight.delete(body.requestId);
  if (!request || request.generation !== state.generation) {
    return;
  }
  state.total = body.total;
  for (const [key, mark] of Object.entries(body.marks || {})) {
    state.marks.set(key, mark);
  }
  if (request.locate) {
    onLocated(request, body.row);
  } else {
    state.pages.set(request.page, body.tensors);
    if (!state.rowsShown && body.tensors.length > 0) {
      state.rowsShown = true;
      requestAnimationFrame(() => post('shown', { what: 'rows', at: Date.now() }));
    }
  }
  renderRows();
}

function onLocated(request, row) {
  if (row !== undefined) {
    select(row, { scroll: 'center' });
    if (request.showValues) {
      showStats(request.locate, null);
    }
    state.selectPath = null;
  } else if (state.filter && request.showValues) {
    filterInput.value = ''; // the filter hides it: show everything, then select it
    applyQuery('', state.sort, state.descending, null);
    locate(request.locate, true);
  } else {
    state.selectPath = null;
  }
}

export function onTensorsFailed(body) {
  const request = state.inFlight.get(body.requestId);
  state.inFlight.delete(body.requestId);
  if (request && request.generation === state.generation && !state.waiting) {
    rowCount.replaceChildren(el('span', { className: 'error-text', text: `Could not load tensors: ${body.message}` }),
      el('button', { className: 'button small', onclick: () => applyQuery(state.filter, state.sort, state.descending) }, codicon('refresh'), el('span', { text: 'Retry' })));
  }
}

function tensorAt(index) {
  const page = state.pages.get(Math.floor(index / PAGE_SIZE));
  return page ? page[index % PAGE_SIZE] : undefined;
}

export function selectedTensor() {
  return state.selected >= 0 ? tensorAt(state.selected) : undefined;
}

/** How many characters of the key column's font fit in `width` px. */
function keyCharacters(width) {
  if (!state.charWidth) {
    const probe = el('span', { className: 'col-key measure', text: 'M'.repeat(40) });
    document.body.append(probe);
    state.charWidth = probe.getBoundingClientRect().width / 40 || 7;
    probe.remove();
  }
  return Math.floor((width - 16) / state.charWidth);
}

export function renderRows() {
  if (!viewport || !state.result) {
    return;
  }
  spacer.style.height = `${state.total * ROW_HEIGHT}px`;
  const top = Math.max(0, viewport.scrollTop - ROW_HEIGHT);
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(state.total, Math.ceil((top + viewport.clientHeight) / ROW_HEIGHT) + OVERSCAN);
  const keyCell = viewport.querySelector('.row.header .col-key');
  const keyFits = keyCell ? keyCharacters(keyCell.getBoundingClientRect().width) : 80;
  const rows = [];
  for (let i = first; i < last; i++) {
    const tensor = tensorAt(i);
    if (!tensor) {
      requestPage(Math.floor(i / PAGE_SIZE));
    }
    rows.push(renderRow(i, tensor, keyFits));
  }
  spacer.replaceChildren(...rows);
  if (!rowCount.querySelector('button')) {
    rowCount.textContent = state.waiting ? '' : state.inFlight.size === 0
      ? `${formatExact(state.total)} of ${countOf(state.result.summary.tensors, 'tensor')}`
      : 'Loading…';
  }
  viewport.setAttribute('aria-rowcount', String(state.total));
  if (state.selected >= 0) {
    viewport.setAttribute('aria-activedescendant', `row-${state.selected}`);
  } else {
    viewport.removeAttribute('aria-activedescendant');
  }
}

function renderRow(index, tensor, keyFits) {
  const row = el('div', {
    id: `row-${index}`, className: `row${index === state.selected ? ' selected' : ''}`, role: 'row',
    'aria-rowindex': index + 1, 'aria-selected': index === state.selected ? 'true' : 'false', style: { top: `${index * ROW_HEIGHT}px` },
    onclick: () => { interacted(); select(index); showSelected(); }, ondblclick: () => revealInTree(index, true),
  });
  if (!tensor) {
    row.append(el('div', { className: 'cell col-key muted', role: 'gridcell', text: '…' }));
    return row;
  }
  row.dataset.key = tensor.key;
  const hidden = state.columns.filter((c) => !state.shown.includes(c)).map((c) => `${c.title}: ${c.cell(tensor).text}`);
  for (const column of state.shown) {
    const value = column.cell(tensor);
    const shown = column.id === 'key' ? middleEllipsis(value.text, keyFits) : value.text;
    const cell = el('div', { className: `cell col-${column.id}${column.numeric ? ' numeric' : ''}${value.cls ? ` ${value.cls}` : ''}`, role: 'gridcell' },
      value.icon ? codicon(value.icon) : null, el('span', { text: shown }));
    const title = column.id === 'key' && hidden.length > 0
      ? [value.text, hidden.join(' · ')].join('\n')
      : shown !== value.text ? value.text : value.title;
    if (title) {
      cell.title = title; // only what the cell does not already say
    }
    row.append(cell);
  }
  if (tensor.shared_with.length > 0) {
    row.classList.add('tied');
    row.lastChild.title = `shares its storage with ${tensor.shared_with.join(', ')}`;
  }
  const where = [partName(tensor.part) ? `in ${partName(tensor.part)}` : '', shardingText(tensor)].filter(Boolean).join('\n');
  if (where) {
    row.title = where;
  }
  markRow(row, tensor);
  return row;
}

/** A row the last scan found bad: its severity's class and icon, what was found in the key's title. */
function markRow(row, tensor) {
  const mark = state.marks.get(tensor.key);
  if (!mark) {
    return;
  }
  row.classList.add(`scan-${mark.severity}`);
  row.dataset.scan = mark.severity;
  const keyCell = row.querySelector('.col-key');
  if (keyCell) {
    keyCell.prepend(codicon(mark.severity === 'error' ? 'error' : 'warning', 'scan-mark'));
    keyCell.title = `${mark.label}: ${tensor.key}`;
  }
}

/** After a scan: the pages again, with the server's marks; scroll and selection stay. */
export function reloadMarks() {
  state.marks.clear();
  if (viewport) {
    state.generation += 1;
    state.pages.clear();
    state.inFlight.clear();
    renderRows();
  }
}

function select(index, options) {
  if (state.total === 0) {
    return;
  }
  state.selected = Math.max(0, Math.min(state.total - 1, index));
  const top = state.selected * ROW_HEIGHT; // below the sticky header, which is one row high
  const visible = viewport.clientHeight - ROW_HEIGHT;
  if (options && options.scroll === 'center' && (top < viewport.scrollTop || top + ROW_HEIGHT > viewport.scrollTop + visible)) {
    viewport.scrollTop = Math.max(0, top - visible / 2);
  } else if (top < viewport.scrollTop) {
    viewport.scrollTop = top;
  } else if (top + ROW_HEIGHT > viewport.scrollTop + visible) {
    viewport.scrollTop = top + ROW_HEIGHT - visible;
  }
  remember();
  renderRows();
}

/** The values of the selected row, now. */
function showSelected() {
  const tensor = selectedTensor();
  if (tensor) {
    showStats(tensor.path, tensor.key);
  }
}

/** The values of the selected row, once the keyboard rests on it. */
function followSelection() {
  clearTimeout(state.followTimer);
  state.followTimer = setTimeout(showSelected, FOLLOW_SELECTION_MS);
}

function revealInTree(index, focus) {
  const tensor = tensorAt(index);
  if (tensor) {
    post('revealInTree', { path: tensor.path, focus });
  }
}

function onTableKey(event) {
  const pageRows = Math.max(1, Math.floor(viewport.clientHeight / ROW_HEIGHT) - 2);
  const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: pageRows, PageUp: -pageRows };
  if (event.key in moves) {
    select(Math.max(0, state.selected) + moves[event.key]);
    followSelection();
  } else if (event.key === 'Home') {
    select(0);
    followSelection();
  } else if (event.key === 'End') {
    select(state.total - 1);
    followSelection();
  } else if (event.key === 'Enter') {
    showSelected();
    revealInTree(state.selected, false); // the keyboard stays in the table
  } else if ((event.ctrlKey || event.metaKey) && event.key === 'c') {
    const tensor = selectedTensor();
    if (tensor) {
      post('copy', { text: tensor.key });
    }
  } else {
    return;
  }
  interacted();
  event.preventDefault();
}
