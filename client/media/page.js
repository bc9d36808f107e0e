// @ts-check
// The checkpoint page (webview). Renders what the extension forwards from the server:
// `init` (a pthscope/open result), `tensors` pages for a virtualised, filterable, sortable
// table, and `stats` of the tensor last clicked (or chosen with Enter); in Restricted Mode, `trust`
// (what that mode changes); after a scan, `scanned` (rows the server marks get its mark), and a
// tree node's `moduleStats`. It knows no file formats. Messages are {type, body}; it says `ready` first.
(function () {
  'use strict';

  const vscode = acquireVsCodeApi();
  const ROW_HEIGHT = 24;
  const PAGE_SIZE = 500;
  const OVERSCAN = 10;
  const FILTER_DEBOUNCE_MS = 200;

  /** Columns of the tensor table; `sort` names the server's sort key when sortable. */
  const COLUMNS = [
    { id: 'key', title: 'Key', sort: 'key', cell: (t) => t.key },
    { id: 'shape', title: 'Shape', cell: shapeCell },
    { id: 'dtype', title: 'DType', sort: 'dtype', cell: (t) => t.dtype },
    { id: 'grad', title: 'requires_grad', sort: 'grad_state', cell: gradCell },
    { id: 'role', title: 'Role', sort: 'role', cell: roleCell },
    { id: 'numel', title: 'Numel', sort: 'numel', numeric: true, cell: (t) => formatExact(t.numel) },
    { id: 'bytes', title: 'Size', sort: 'nbytes', numeric: true, cell: (t) => formatBytes(t.nbytes) },
    { id: 'location', title: 'Device', cell: (t) => t.location },
  ];

  const state = {
    result: null,
    total: 0,
    filter: '',
    sort: 'index',
    descending: false,
    generation: 0,
    /** page index → tensors of that page, for the current generation */
    pages: new Map(),
    /** requestId → {generation, page} */
    inFlight: new Map(),
    nextRequestId: 1,
    selected: -1,
    selectKeyWhenLoaded: null,
    filterTimer: undefined,
    /** the last stats request, the one whose answer the values panel waits for, and its tensor */
    statsRequestId: 0,
    pendingStats: 0,
    statsKey: null,
    /** key → the last scan's mark of that row, as the server sent it with the table's pages */
    marks: new Map(),
  };

  // ---------- formatting (mirrors client/src/format.ts) ----------
  function formatExact(n) {
    return Number(n).toLocaleString('en-US');
  }
  function formatBytes(bytes) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = bytes;
    let unit = 0;
    while (Math.abs(value) >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
  }
  /** What each role the server assigns is called. */
  const ROLE_LABELS = { parameter: 'model parameters', buffer: 'buffers', optimizer_state: 'optimizer state', other: 'other tensors' };
  const ROLE_CELLS = { parameter: 'parameter', buffer: 'buffer', optimizer_state: 'optimizer state', other: 'other' };
  /** A distributed tensor's piece says what it is a piece of; the title, how it is split. */
  function shapeCell(t) {
    const text = `[${t.shape.join(', ')}]`;
    const sharding = t.sharding;
    if (!sharding) {
      return text;
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
      : `${s.chunks.length} chunk${s.chunks.length === 1 ? '' : 's'}${files.size ? ` in ${[...files].join(', ')}` : ''}`;
    return `${how}: ${where}`;
  }

  /** The file name of a part of a multi-file checkpoint (null: the checkpoint's own file). */
  function partName(part) {
    const parts = state.result ? state.result.parts : [];
    return part === null || part === undefined || !parts[part] ? '' : parts[part].file.split(/[\\/]/).pop();
  }

  function roleCell(t) {
    return { text: ROLE_CELLS[t.role] || t.role, title: `saved as ${t.kind}` };
  }
  function gradCell(t) {
    if (t.role === 'buffer') {
      return { icon: 'database', cls: 'grad-buffer', text: 'buffer' };
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
    return { icon: 'circle-outline', cls: 'grad-unknown', text: 'not stored' };
  }

  // ---------- tiny DOM helper ----------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) {
        continue;
      }
      if (name === 'className') {
        node.className = value;
      } else if (name === 'style') {
        Object.assign(node.style, value); // CSSOM, which the CSP allows (inline style attributes it does not)
      } else if (name === 'text') {
        node.textContent = value;
      } else if (name.startsWith('on')) {
        node.addEventListener(name.slice(2), value);
      } else {
        node.setAttribute(name, value === true ? '' : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) {
        node.append(child);
      }
    }
    return node;
  }
  function codicon(name, extra) {
    return el('span', { className: `codicon codicon-${name}${extra ? ` ${extra}` : ''}`, 'aria-hidden': 'true' });
  }

  // ---------- header, banners, summary ----------
  function renderProblems(result) {
    const items = [
      ...result.errors.map((p) => ({ p, severity: 'error' })),
      // The safety banner already lists dangerous globals.
      ...result.warnings.filter((p) => p.kind !== 'dangerous-globals').map((p) => ({ p, severity: 'warning' })),
    ];
    if (items.length === 0) {
      return null;
    }
    return el('section', { id: 'problems', 'aria-label': 'Problems' },
      items.map(({ p, severity }) => el('div', { className: `problem ${severity}`, role: severity === 'error' ? 'alert' : 'note' },
        codicon(severity),
        el('span', { className: 'problem-kind', text: p.kind }),
        el('span', { className: 'problem-message', text: p.message }),
        p.where ? el('span', { className: 'problem-where', text: p.where }) : null)));
  }

  function renderSafety(result) {
    const risky = result.globals.filter((g) => g.risk !== 'safe');
    const safe = result.globals.filter((g) => g.risk === 'safe');
    if (risky.length === 0) {
      return safe.length === 0 ? null : el('section', { id: 'safety', className: 'banner safe' },
        codicon('shield'),
        el('span', { text: `${safe.length} global${safe.length === 1 ? '' : 's'} named by the pickle, all known to be safe: ${safe.map((g) => g.name).join(', ')}` }));
    }
    const dangerous = risky.some((g) => g.risk === 'dangerous');
    const title = dangerous
      ? 'This file would run dangerous code if loaded with torch.load(weights_only=False).'
      : 'Loading this file needs torch.load(weights_only=False), which imports and calls these classes; weights_only=True refuses them.';
    return el('section', { id: 'safety', className: `banner ${dangerous ? 'dangerous' : 'unknown'}`, role: 'alert' },
      el('div', { className: 'banner-title' }, codicon(dangerous ? 'warning' : 'info'), el('strong', { text: title })),
      el('p', { text: dangerous
        ? 'pthscope did not import or call any of them. The pickle names these globals:'
        : 'pthscope did not import any of them. Classes the pickle names that are not on the weights_only allow-list:' }),
      el('ul', { className: 'globals' },
        risky.map((g) => el('li', { className: `global ${g.risk}` },
          el('span', { className: 'risk', text: g.risk }),
          el('code', { text: g.name }),
          g.count > 1 ? el('span', { className: 'count', text: `×${g.count}` }) : null))),
      safe.length > 0 ? el('p', { className: 'muted', text: `Also named, and safe: ${safe.map((g) => g.name).join(', ')}` }) : null);
  }

  /** A file that is one part of a set: which part, and a way to open the whole set. */
  function renderPartOf(result) {
    const of = result.part_of;
    if (!of) {
      return null;
    }
    const what = { sharded: 'shard', 'torch-distributed': 'data file', 'torch-ranks': 'rank file' }[of.format] || 'part';
    return el('section', { id: 'part-of', className: 'banner unknown', role: 'note' },
      codicon('files'),
      el('span', { text: `${what} ${of.part} of ${of.parts} of ${of.file}` }),
      el('button', { id: 'open-set', text: 'Open the whole set', onclick: () => vscode.postMessage({ type: 'openSet', body: { file: of.file } }) }));
  }

  /** The files of a checkpoint made of several: each with its format, size and tensors. */
  function renderParts(result) {
    if (!result.parts || result.parts.length === 0) {
      return null;
    }
    return el('details', { id: 'parts', className: 'card metadata' },
      el('summary', { text: `Files (${result.parts.length})` }),
      el('dl', { className: 'kv' }, result.parts.flatMap((part) => [
        el('dt', { text: part.file.split(/[\\/]/).pop() }),
        el('dd', { text: `${part.format}, ${formatBytes(part.size)}, ${formatExact(part.tensors)} tensors` })])));
  }

  function stat(id, label, value, text, extraClass) {
    return el('div', { className: `stat ${extraClass || ''}` },
      el('span', { className: 'stat-label', text: label }),
      el('span', { id, className: 'stat-value', 'data-value': value, text: text === undefined ? formatExact(value) : text }));
  }

  function keyValueList(record, format) {
    const entries = Object.entries(record).sort((a, b) => (typeof b[1] === 'number' ? b[1] - a[1] : 0));
    if (entries.length === 0) {
      return el('span', { className: 'muted', text: '—' });
    }
    return el('dl', { className: 'kv' }, entries.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: format(v) })]));
  }

  function renderSummary(result) {
    const s = result.summary;
    const p = s.roles.parameter;
    const share = (n) => (p.elements > 0 ? `${((100 * n) / p.elements).toFixed(n > 0 && n < p.elements ? 1 : 0)}%` : '0%');
    const bar = el('div', { className: 'param-bar', role: 'img', 'aria-label': `trainable ${share(p.trainable)}, frozen ${share(p.frozen)}, flag not stored ${share(p.not_stored)}` },
      el('span', { className: 'seg trainable', style: { width: share(p.trainable) } }),
      el('span', { className: 'seg frozen', style: { width: share(p.frozen) } }),
      el('span', { className: 'seg unknown', style: { width: share(p.not_stored) } }));
    const metadata = Object.entries(result.metadata || {});
    return el('section', { id: 'summary', 'aria-label': 'Summary' },
      el('div', { className: 'card' },
        el('h2', { text: 'Contents' }),
        stat('summary-tensors', 'Tensors', s.tensors),
        stat('summary-modules', 'Modules', s.modules),
        stat('summary-size', 'File size', result.size, formatBytes(result.size)),
        stat('summary-tensor-bytes', 'Tensor bytes', s.tensor_bytes, formatBytes(s.tensor_bytes)),
        stat('summary-storage-bytes', 'Storage bytes', s.storage_bytes, formatBytes(s.storage_bytes))),
      renderRoles(s.roles),
      el('div', { className: 'card' },
        el('h2', { text: 'Model parameters' }),
        stat('summary-parameters', 'Elements', p.elements),
        stat('summary-trainable', 'Trainable', p.trainable, undefined, 'trainable'),
        stat('summary-frozen', 'Frozen', p.frozen, undefined, 'frozen'),
        stat('summary-unknown', 'Flag not stored', p.not_stored, undefined, 'unknown'),
        bar,
        s.requires_grad_stored ? null : el('p', { className: 'muted note', text: 'This file stores tensors only: requires_grad is not saved, so after load_state_dict every parameter is trainable again.' })),
      el('div', { className: 'card' },
        el('h2', { text: 'Bytes by dtype' }),
        keyValueList(s.bytes_by_dtype, formatBytes),
        el('h2', { text: 'Locations' }),
        keyValueList(s.locations, (n) => `${formatExact(n)} tensors`)),
      metadata.length > 0 ? el('details', { className: 'card metadata' },
        el('summary', { text: `Metadata (${metadata.length})` }),
        keyValueList(Object.fromEntries(metadata), String)) : null,
      renderParts(result));
  }

  /** The server's counts by role: model parameters, buffers, optimizer state, other tensors. */
  function renderRoles(roles) {
    const cell = (role, column, value, text) => el('td', { id: `role-${role}-${column}`, className: 'numeric', 'data-value': value, text });
    return el('div', { className: 'card by-role' },
      el('h2', { text: 'By role' }),
      el('table', { id: 'roles', className: 'roles' },
        el('thead', {}, el('tr', {}, el('th', { text: '' }), el('th', { text: 'Tensors' }), el('th', { text: 'Elements' }), el('th', { text: 'Bytes' }))),
        el('tbody', {}, Object.entries(roles).map(([role, c]) => el('tr', { className: c.tensors ? '' : 'muted' },
          el('th', { scope: 'row', text: ROLE_LABELS[role] || role }),
          cell(role, 'tensors', c.tensors, formatExact(c.tensors)),
          cell(role, 'elements', c.elements, formatExact(c.elements)),
          cell(role, 'bytes', c.bytes, formatBytes(c.bytes)))))));
  }

  // ---------- the tensor table ----------
  let viewport;
  let spacer;
  let rowCount;
  let filterInput;
  let headerButtons = [];

  function renderTable() {
    filterInput = el('input', {
      id: 'filter', type: 'search', placeholder: 'Filter tensors by key (* wildcards)', 'aria-label': 'Filter tensors by key',
      spellcheck: 'false', oninput: () => scheduleFilter(filterInput.value),
      onkeydown: (e) => { if (e.key === 'ArrowDown') { e.preventDefault(); viewport.focus(); select(Math.max(0, state.selected)); } },
    });
    rowCount = el('span', { id: 'row-count', role: 'status', className: 'muted' });
    headerButtons = [];
    const header = el('div', { className: 'row header', role: 'row' },
      COLUMNS.map((c) => {
        if (!c.sort) {
          return el('div', { className: `cell col-${c.id}`, role: 'columnheader', text: c.title });
        }
        const button = el('button', { className: 'sort', 'data-sort': c.sort, title: `Sort by ${c.title}`, onclick: () => toggleSort(c.sort) },
          el('span', { text: c.title }), codicon('arrow-small-down', 'sort-icon'));
        headerButtons.push(button);
        return el('div', { className: `cell col-${c.id}${c.numeric ? ' numeric' : ''}`, role: 'columnheader', 'aria-sort': 'none' }, button);
      }));
    spacer = el('div', { className: 'spacer' });
    viewport = el('div', {
      id: 'viewport', role: 'rowgroup', tabindex: '0', 'aria-label': 'Tensors (arrow keys move; Enter shows the values and reveals in the side panel)',
      onscroll: () => requestAnimationFrame(renderRows), onkeydown: onTableKey,
    }, spacer);
    return el('section', { id: 'tensors', 'aria-label': 'Tensors' },
      el('div', { className: 'toolbar' }, el('div', { className: 'filter-box' }, codicon('filter'), filterInput), rowCount,
        el('button', { id: 'scan-button', className: 'secondary', title: 'Read every tensor and report NaN, inf, extreme values and all-zero tensors',
          onclick: () => vscode.postMessage({ type: 'scan' }) }, codicon('search'), el('span', { text: 'Scan for NaN/Inf' }))),
      el('div', { id: 'table', role: 'grid', 'aria-readonly': 'true' }, header, viewport));
  }

  function scheduleFilter(value) {
    clearTimeout(state.filterTimer);
    state.filterTimer = setTimeout(() => applyQuery(value, state.sort, state.descending), FILTER_DEBOUNCE_MS);
  }

  function toggleSort(sort) {
    if (state.sort !== sort) {
      applyQuery(state.filter, sort, sort === 'numel' || sort === 'nbytes');
    } else if (state.descending === (sort === 'numel' || sort === 'nbytes')) {
      applyQuery(state.filter, sort, !state.descending);
    } else {
      applyQuery(state.filter, 'index', false);
    }
  }

  function applyQuery(filter, sort, descending) {
    state.filter = filter;
    state.sort = sort;
    state.descending = descending;
    state.generation += 1;
    state.pages.clear();
    state.inFlight.clear();
    state.selected = -1;
    for (const button of headerButtons) {
      const active = button.dataset.sort === sort;
      button.parentElement.setAttribute('aria-sort', active ? (descending ? 'descending' : 'ascending') : 'none');
      button.classList.toggle('active', active);
      button.classList.toggle('descending', active && descending);
    }
    viewport.scrollTop = 0;
    requestPage(0);
    renderRows();
  }

  function requestPage(page) {
    if (state.pages.has(page) || [...state.inFlight.values()].some((r) => r.page === page && r.generation === state.generation)) {
      return;
    }
    const requestId = state.nextRequestId++;
    state.inFlight.set(requestId, { page, generation: state.generation });
    vscode.postMessage({ type: 'tensors', body: { requestId, offset: page * PAGE_SIZE, limit: PAGE_SIZE, filter: state.filter, sort: state.sort, descending: state.descending } });
  }

  function onTensors(body) {
    const request = state.inFlight.get(body.requestId);
    state.inFlight.delete(body.requestId);
    if (!request || request.generation !== state.generation) {
      return;
    }
    state.pages.set(request.page, body.tensors);
    state.total = body.total;
    for (const [key, mark] of Object.entries(body.marks || {})) {
      state.marks.set(key, mark);
    }
    if (state.selectKeyWhenLoaded !== null) {
      const index = body.tensors.findIndex((t) => t.key === state.selectKeyWhenLoaded);
      state.selectKeyWhenLoaded = null;
      select(request.page * PAGE_SIZE + Math.max(0, index));
    }
    renderRows();
  }

  function onTensorsFailed(body) {
    const request = state.inFlight.get(body.requestId);
    state.inFlight.delete(body.requestId);
    if (request && request.generation === state.generation) {
      rowCount.textContent = `Could not load tensors: ${body.message}`;
      rowCount.classList.add('error-text');
    }
  }

  function tensorAt(index) {
    const page = state.pages.get(Math.floor(index / PAGE_SIZE));
    return page ? page[index % PAGE_SIZE] : undefined;
  }

  function renderRows() {
    if (!viewport) {
      return;
    }
    spacer.style.height = `${state.total * ROW_HEIGHT}px`;
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(state.total, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i++) {
      const tensor = tensorAt(i);
      if (!tensor) {
        requestPage(Math.floor(i / PAGE_SIZE));
      }
      rows.push(renderRow(i, tensor));
    }
    spacer.replaceChildren(...rows);
    const loaded = state.inFlight.size === 0;
    rowCount.classList.remove('error-text');
    rowCount.textContent = loaded
      ? `${formatExact(state.total)} of ${formatExact(state.result.summary.tensors)} tensors`
      : 'Loading…';
    viewport.setAttribute('aria-rowcount', String(state.total));
    if (state.selected >= 0) {
      viewport.setAttribute('aria-activedescendant', `row-${state.selected}`);
    } else {
      viewport.removeAttribute('aria-activedescendant');
    }
  }

  function renderRow(index, tensor) {
    const row = el('div', {
      id: `row-${index}`, className: `row${index === state.selected ? ' selected' : ''}`, role: 'row',
      'aria-rowindex': index + 1, 'aria-selected': index === state.selected ? 'true' : 'false', style: { top: `${index * ROW_HEIGHT}px` },
      onclick: () => { select(index); showStats(index); }, ondblclick: () => revealInTree(index),
    });
    if (!tensor) {
      row.append(el('div', { className: 'cell col-key muted', role: 'gridcell', text: '…' }));
      return row;
    }
    row.dataset.key = tensor.key;
    for (const column of COLUMNS) {
      const value = column.cell(tensor);
      const cell = el('div', { className: `cell col-${column.id}${column.numeric ? ' numeric' : ''}`, role: 'gridcell' });
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
    const notes = [tensor.shared_with.length > 0 ? `shares storage with ${tensor.shared_with.join(', ')}` : '',
      partName(tensor.part) ? `in ${partName(tensor.part)}` : '', shardingText(tensor)].filter(Boolean);
    if (notes.length > 0) {
      row.title = notes.join('\n');
    }
    markRow(row, tensor);
    return row;
  }

  function select(index) {
    if (state.total === 0) {
      return;
    }
    state.selected = Math.max(0, Math.min(state.total - 1, index));
    const top = state.selected * ROW_HEIGHT;
    if (top < viewport.scrollTop) {
      viewport.scrollTop = top;
    } else if (top + ROW_HEIGHT > viewport.scrollTop + viewport.clientHeight) {
      viewport.scrollTop = top + ROW_HEIGHT - viewport.clientHeight;
    }
    renderRows();
  }

  function revealInTree(index) {
    const tensor = tensorAt(index);
    if (tensor) {
      vscode.postMessage({ type: 'revealInTree', body: { key: tensor.key } });
    }
  }

  function onTableKey(event) {
    const pageRows = Math.max(1, Math.floor(viewport.clientHeight / ROW_HEIGHT) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: pageRows, PageUp: -pageRows };
    if (event.key in moves) {
      select(Math.max(0, state.selected) + moves[event.key]);
    } else if (event.key === 'Home') {
      select(0);
    } else if (event.key === 'End') {
      select(state.total - 1);
    } else if (event.key === 'Enter') {
      showStats(state.selected);
      revealInTree(state.selected);
    } else if ((event.ctrlKey || event.metaKey) && event.key === 'c') {
      const tensor = tensorAt(state.selected);
      if (tensor) {
        vscode.postMessage({ type: 'copy', body: { text: tensor.key } });
      }
    } else {
      return;
    }
    event.preventDefault();
  }

  // ---------- the values panel (pthscope/stats of one tensor) ----------
  let statsPanel;

  function formatValue(v) {
    if (v === null || v === undefined) {
      return '—';
    }
    if (Number.isInteger(v) && Math.abs(v) < 1e15) {
      return formatExact(v);
    }
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e5 || a < 1e-4) ? v.toExponential(4) : String(Number(v.toPrecision(6)));
  }

  function renderStatsPanel() {
    statsPanel = el('section', { id: 'stats', className: 'card', 'aria-label': 'Tensor values', 'aria-live': 'polite' },
      el('p', { className: 'muted', text: 'Click a tensor (or press Enter on it) to see its values: min, max, mean, std and a histogram.' }));
    return statsPanel;
  }

  function showStats(index) {
    const tensor = tensorAt(index);
    if (!tensor || !statsPanel || state.statsKey === tensor.key) {
      return;
    }
    state.statsKey = tensor.key;
    state.statsRequestId += 1;
    const requestId = state.statsRequestId;
    statsPanel.replaceChildren(statsTitle(tensor.key), el('p', { className: 'muted', text: 'Reading this tensor’s bytes… nothing is executed.' }));
    statsPanel.setAttribute('aria-busy', 'true');
    state.pendingStats = requestId;
    vscode.postMessage({ type: 'stats', body: { requestId, path: tensor.path } });
  }

  function statsTitle(key) {
    return el('h2', {}, el('span', { text: 'Values of ' }), el('code', { id: 'stats-key', text: key }));
  }

  function onStats(body) {
    if (!statsPanel || body.requestId !== state.pendingStats) {
      return;
    }
    state.pendingStats = 0;
    statsPanel.setAttribute('aria-busy', 'false');
    const s = body.stats;
    if (!s) {
      statsPanel.replaceChildren(statsTitle(state.statsKey),
        el('div', { className: 'problem error', role: 'alert' }, codicon('error'), el('span', { id: 'stats-error', text: body.error || 'no statistics' })));
      state.statsKey = null; // asking again may work (a file fixed on disk)
      return;
    }
    const about = `${s.dtype} [${s.shape.join(', ')}] · ${formatExact(s.numel)} elements · computed with ${s.engine}`
      + (s.sampled ? ` · sampled: ${formatExact(s.sample_size)} of them` : '');
    const parts = [statsTitle(s.key), el('p', { className: 'muted', id: 'stats-about', text: about })];
    if (s.numel > 0) {
      parts.push(...valuesParts(s));
    }
    statsPanel.replaceChildren(...parts);
  }

  /** The statistics grid and histogram of a tensor's (or a node's) values. */
  function valuesParts(s) {
    const parts = [];
    parts.push(el('div', { className: 'stats-grid' },
      stat('stats-min', 'Min', s.min, formatValue(s.min)),
      stat('stats-max', 'Max', s.max, formatValue(s.max)),
      stat('stats-mean', 'Mean', s.mean, formatValue(s.mean)),
      stat('stats-std', 'Std', s.std, formatValue(s.std)),
      stat('stats-zeros', 'Zeros', s.zeros),
      stat('stats-nan', 'NaN', s.nan, undefined, s.nan > 0 ? 'alarm' : ''),
      stat('stats-posinf', '+inf', s.posinf, undefined, s.posinf > 0 ? 'alarm' : ''),
      stat('stats-neginf', '−inf', s.neginf, undefined, s.neginf > 0 ? 'alarm' : ''),
      s.l2 === undefined ? null : stat('stats-l2', 'L2 norm', s.l2, formatValue(s.l2))));
    if (s.histogram) {
      const n = s.histogram.counts.length;
      const width = (s.histogram.max - s.histogram.min) / n;
      parts.push(bars(s.histogram.counts.map((c, i) => ({
        count: c, label: `[${formatValue(s.histogram.min + i * width)}, ${formatValue(s.histogram.min + (i + 1) * width)}${i === n - 1 ? ']' : ')'}`,
      })), formatValue(s.histogram.min), formatValue(s.histogram.max)));
    } else if (s.values) {
      parts.push(bars(s.values.map(([v, c]) => ({ count: c, label: `${formatValue(v)}`, tick: true })), '', ''));
    }
    return parts;
  }

  /** A tree node's statistics: all its floating-point (else integer) tensors together. */
  function onModuleStats(body) {
    if (!statsPanel) {
      return;
    }
    state.pendingStats = 0;
    state.statsKey = null;
    const s = body.stats;
    const title = el('h2', {}, el('span', { text: 'Values of ' }), el('code', { id: 'stats-key', text: s ? s.key || '(root)' : 'the node' }),
      el('span', { text: ' (all its tensors)' }));
    if (!s) {
      statsPanel.replaceChildren(title, el('div', { className: 'problem error', role: 'alert' }, codicon('error'),
        el('span', { id: 'stats-error', text: body.error || 'no statistics' })));
      return;
    }
    const dtypes = Object.entries(s.dtypes).map(([d, n]) => `${n} ${d}`).join(', ');
    const about = `${formatExact(s.tensors)} tensors (${dtypes}) · ${formatExact(s.numel)} elements`
      + (s.left_out ? ` · ${formatExact(s.left_out)} left out (integer beside floating-point, or unreadable)` : '');
    statsPanel.replaceChildren(title, el('p', { className: 'muted', id: 'stats-about', text: about }), ...valuesParts(s));
    statsPanel.scrollIntoView({ block: 'nearest' });
  }

  // ---------- the last scan: marked rows and its findings ----------
  const FINDING_LABELS = { nan: 'with NaN', inf: 'with inf', all_zero: 'all zero', extreme: 'with extreme values', fp16_overflow: 'past float16\'s range' };

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

  /** The scan's section: its summary (the server's), and the bad tensors when the scan just ran. */
  function renderScan(summary, result) {
    document.getElementById('scan')?.remove();
    if (!summary) {
      return;
    }
    const counts = Object.entries(summary.counts).filter(([, n]) => n > 0).map(([kind, n]) => `${n} ${FINDING_LABELS[kind] || kind}`);
    const text = summary.bad === 0
      ? `No NaN, inf, extreme or all-zero values in ${formatExact(summary.scanned)} tensors.`
      : `${formatExact(summary.bad)} bad tensors of ${formatExact(summary.scanned)} scanned: ${counts.join(', ')}.`;
    const severity = summary.errors > 0 ? 'error' : summary.bad > 0 ? 'warning' : 'safe';
    const bad = result ? result.bad : [];
    const section = el('section', { id: 'scan', className: `banner ${severity === 'error' ? 'dangerous' : severity === 'warning' ? 'unknown' : 'safe'}`,
      'aria-label': 'Scan for NaN/Inf', 'data-bad': summary.bad, 'data-errors': summary.errors },
    el('div', { className: 'banner-title' }, codicon(severity === 'safe' ? 'pass' : severity),
      el('strong', { id: 'scan-summary', text: text + (summary.complete ? '' : ' (stopped before the end)') })),
    bad.length ? el('ul', { className: 'globals scan-list' }, bad.slice(0, 20).map((t) => el('li', { className: `global ${t.severity === 'error' ? 'dangerous' : 'unknown'}` },
      el('span', { className: 'risk', text: t.severity }),
      el('button', { className: 'link', title: 'Show in the table', text: t.key, onclick: () => onReveal({ key: t.key }) }),
      el('span', { className: 'muted', text: t.findings.map((f) => f.message).join('; ') })))) : null,
    bad.length > 20 ? el('p', { className: 'muted', text: `… and ${formatExact(bad.length - 20)} more, marked in the table.` }) : null);
    document.getElementById('summary')?.before(section);
  }

  function onScanned(body) {
    state.marks.clear();
    renderScan(body.summary, body.result);
    if (viewport) {  // the pages again, with the server's marks; scroll and selection stay
      state.generation += 1;
      state.pages.clear();
      state.inFlight.clear();
      renderRows();
    }
  }

  /** A tiny histogram: CSS bars whose heights are the counts; each bar says its range and count. */
  function bars(items, low, high) {
    const most = Math.max(1, ...items.map((b) => b.count));
    const description = items.map((b) => `${b.label}: ${formatExact(b.count)}`).join('; ');
    return el('div', { className: 'histogram-box' },
      el('div', { id: 'stats-histogram', className: 'histogram', role: 'img', 'aria-label': `Histogram. ${description}` },
        items.map((b) => el('div', { className: 'bin', title: `${b.label}: ${formatExact(b.count)}` },
          el('span', { className: 'bar', style: { height: `${b.count > 0 ? Math.max(2, (100 * b.count) / most) : 0}%` } }),
          b.tick ? el('span', { className: 'tick', text: b.label }) : null))),
      low || high ? el('div', { className: 'histogram-axis muted' }, el('span', { text: low }), el('span', { text: high })) : null);
  }

  // ---------- messages ----------
  function onInit(result) {
    state.result = result;
    state.total = result.summary.tensors;
    const app = document.getElementById('app');
    document.getElementById('format').textContent = result.format;
    document.getElementById('status').remove();
    const parts = [renderPartOf(result), renderProblems(result), renderSafety(result)];
    if (result.root !== null || result.summary.tensors > 0) {
      parts.push(renderSummary(result), renderTable(), renderStatsPanel());
    }
    app.append(...parts.filter(Boolean));
    renderScan(result.scan || null, null);
    app.setAttribute('aria-busy', 'false');
    if (viewport) {
      applyQuery('', 'index', false);
    }
  }

  function onFailed(body) {
    const status = document.getElementById('status');
    status.replaceChildren(codicon('error'), el('span', { text: ` Could not read this file: ${body.message}` }));
    status.className = 'problem error';
    status.setAttribute('role', 'alert');
    document.getElementById('app').setAttribute('aria-busy', 'false');
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

  function onReveal(body) {
    if (!filterInput) {
      return;
    }
    filterInput.value = body.key;
    state.selectKeyWhenLoaded = body.key;
    applyQuery(body.key, 'index', false);
    viewport.focus();
  }

  window.addEventListener('message', (event) => {
    const { type, body } = event.data;
    switch (type) {
      case 'init': onInit(body); break;
      case 'failed': onFailed(body); break;
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
  vscode.postMessage({ type: 'ready' });
})();
