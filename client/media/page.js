// @ts-check
// The checkpoint page (webview). Renders what the extension forwards from the server: `init` (a
// pthscope/open result; again after the file changed or the server restarted, keeping the view),
// `tensors` pages for a virtualised, filterable, sortable table with resizable columns, `stats`
// of the selected tensor in a values pane beside or below the table (never pushing it away),
// `reveal` (a tensor chosen in the side panel or Find: select it and show its values), `changed`
// (the file is being read again: wait, quietly), `failed` (with Retry) and, in Restricted Mode,
// `trust`. It knows no file formats. Text from the file enters the DOM only as textContent.
// Messages are {type, body}; it says `ready` first.
(function () {
  'use strict';

  const vscode = acquireVsCodeApi();
  const ROW_HEIGHT = 24; // also the sticky header's height (page.css --row-height)
  const PAGE_SIZE = 500;
  const OVERSCAN = 10;
  const FILTER_DEBOUNCE_MS = 200;
  const FOLLOW_SELECTION_MS = 250;
  const KEY_MIN_WIDTH = 120;
  const MIN_COLUMN_WIDTH = 48;

  /**
   * Columns of the tensor table: `sort` names the server's sort key, `width` the default width in
   * px (the key column takes the rest); `flags`: shown only when the file stores requires_grad.
   */
  const COLUMNS = [
    { id: 'key', title: 'Key', sort: 'key', cell: (t) => ({ text: t.key }) },
    { id: 'shape', title: 'Shape', sort: 'shape', width: 130, cell: (t) => ({ text: `[${t.shape.join(', ')}]` }) },
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

  const saved = vscode.getState() || {};
  const state = {
    result: null,
    /** the table's columns for this file (requires_grad only when the file stores it) */
    columns: COLUMNS,
    /** those that fit the table's width now */
    shown: COLUMNS,
    widths: saved.widths || {},
    total: 0,
    filter: saved.filter || '',
    sort: saved.sort || 'index',
    descending: saved.descending === true,
    generation: 0,
    /** page index → tensors of that page, for the current generation */
    pages: new Map(),
    /** requestId → {generation, page} (a page) or {generation, locate: path} (where a tensor is) */
    inFlight: new Map(),
    nextRequestId: 1,
    selected: -1,
    /** a tensor to select, and show, once its row is known */
    selectPath: saved.selectedPath || null,
    /** true while the file is read again: no requests, no errors */
    waiting: false,
    /** the last stats request, the one the values pane waits for, and its tensor */
    statsRequestId: 0,
    statsPath: null,
    followTimer: undefined,
    filterTimer: undefined,
    interacted: false,
    rowsShown: false,
    charWidth: 0,
    pendingReveal: null,
  };

  function remember() {
    vscode.setState({ widths: state.widths, filter: state.filter, sort: state.sort, descending: state.descending, selectedPath: selectedTensor()?.path ?? state.selectPath });
  }

  /** The first time the user works in the page: a preview tab is then kept open. */
  function interacted() {
    if (!state.interacted) {
      state.interacted = true;
      vscode.postMessage({ type: 'interacted' });
    }
  }

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
  /** "1 class", "6 classes": a count and its noun. */
  function countOf(n, singular, plural) {
    return `${formatExact(n)} ${n === 1 ? singular : plural || `${singular}s`}`;
  }
  function isFloat(dtype) {
    return /^(b?float|complex)/.test(dtype);
  }
  /** `text` cut in the middle to `max` characters: "model.layers.1…attn.q_proj.weight" (the end says most). */
  function middleEllipsis(text, max) {
    if (text.length <= max || max < 5) {
      return text;
    }
    const tail = Math.ceil((max - 1) * 0.6);
    return `${text.slice(0, max - 1 - tail)}…${text.slice(text.length - tail)}`;
  }

  /** What each role the server assigns is called. */
  const ROLE_LABELS = { parameter: 'model parameters', buffer: 'buffers', optimizer_state: 'optimizer state', other: 'other tensors' };
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

  // ---------- the page's state line (reading, reading again, failed) ----------
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
    document.getElementById('status').hidden = true;
  }
  function retry() {
    setStatus('Reading the checkpoint again… nothing in it is executed.');
    vscode.postMessage({ type: 'retry' });
  }

  // ---------- problems, the safety banner, the flags note ----------
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
        el('div', { className: 'problem-text' },
          el('span', { className: 'problem-kind', text: p.kind }),
          el('span', { className: 'problem-message', text: p.message }),
          p.where ? el('span', { className: 'problem-where', text: p.where }) : null))));
  }

  /** "torch.nn.modules.conv.Conv2d" → "torch.nn"; "demo_models.BasicBlock" → "demo_models": what the banner counts by. */
  function packageOf(name) {
    const parts = name.split(/[.:]/);
    return parts[0] === 'torch' && parts.length > 2 ? `${parts[0]}.${parts[1]}` : parts[0];
  }

  /** "2 classes from demo_models (not importable here) + 6 torch.nn classes" */
  function classesLine(classes, unimportable) {
    const groups = new Map();
    for (const g of classes) {
      const pkg = packageOf(g.name);
      groups.set(pkg, (groups.get(pkg) || 0) + 1);
    }
    const missing = new Set(unimportable);
    return [...groups].sort((a, b) => Number(missing.has(b[0].split('.')[0])) - Number(missing.has(a[0].split('.')[0])) || b[1] - a[1])
      .map(([pkg, n]) => (missing.has(pkg.split('.')[0])
        ? `${countOf(n, 'class', 'classes')} from ${pkg} (not importable here)`
        : `${formatExact(n)} ${pkg} ${n === 1 ? 'class' : 'classes'}`))
      .join(' + ');
  }

  /** The reader's sentence with its `quoted` names as code: text nodes and <code> only. */
  function withCode(sentence) {
    return sentence.split('`').map((part, i) => (i % 2 === 1 ? el('code', { text: part }) : document.createTextNode(part)));
  }

  function namesLine(globals, most) {
    const shown = globals.slice(0, most).map((g) => g.name).join(', ');
    return globals.length > most ? `${shown} + ${globals.length - most} more` : shown;
  }

  /**
   * One line with the verdict and counts; the globals, what each would do and how the pickle
   * uses it behind an expander. Red only when a load would run code.
   */
  function renderSafety(result) {
    const risky = result.globals.filter((g) => g.risk !== 'safe');
    const safe = result.globals.filter((g) => g.risk === 'safe');
    if (result.globals.length === 0) {
      return null;
    }
    const dangerous = risky.filter((g) => g.risk === 'dangerous');
    const classes = risky.filter((g) => g.risk === 'unknown');
    let level;
    let headline;
    if (dangerous.length > 0) {
      level = 'dangerous';
      headline = `Would run code if loaded with weights_only=False: ${namesLine(dangerous, 3)}`
        + (classes.length > 0 ? ` · also imports ${classesLine(classes, result.unimportable)}` : '');
    } else if (classes.length > 0) {
      level = 'unknown';
      headline = `Needs weights_only=False: ${classesLine(classes, result.unimportable)}`;
    } else {
      level = 'safe';
      headline = `Loads with weights_only=True: the pickle names ${countOf(safe.length, 'global')}, all on torch's allow-list`;
    }
    const icon = { dangerous: 'warning', unknown: 'info', safe: 'shield' }[level];
    const details = el('div', { className: 'banner-details' },
      el('p', { className: 'muted', text: risky.length > 0
        ? `pthscope imported and called none of them. What torch.load(weights_only=False) would do with each:`
        : 'torch.load(weights_only=True) accepts these:' }),
      risky.length > 0 ? el('ul', { className: 'globals' },
        risky.map((g) => el('li', { className: `global ${g.risk}` },
          el('span', { className: 'risk', text: g.risk === 'unknown' ? 'imports' : g.risk }),
          el('code', { className: 'global-name', text: g.name }),
          g.count > 1 ? el('span', { className: 'count muted', text: `×${formatExact(g.count)}` }) : null,
          g.effect ? el('span', { className: 'effect' }, withCode(g.effect)) : null))) : null,
      safe.length > 0 ? el('p', { className: 'muted safe-names', text: `${risky.length > 0 ? 'Also named, and safe: ' : ''}${safe.map((g) => g.name).join(', ')}` }) : null);
    return el('section', { id: 'safety', className: `banner ${level}`, role: level === 'dangerous' ? 'alert' : 'note', 'aria-label': 'Safety' },
      el('details', {},
        el('summary', {},
          codicon(icon, 'banner-icon'),
          el('span', { id: 'safety-verdict', className: 'banner-title', text: headline }),
          el('span', { className: 'banner-more muted', text: 'Details' })),
        details));
  }

  /** For a state_dict: requires_grad was not saved, and what that means, said once. */
  function renderFlagsNote(result) {
    const p = result.summary.roles.parameter;
    if (p.tensors === 0 || p.not_stored === 0) {
      return null;
    }
    const all = p.not_stored === p.elements;
    return el('section', { id: 'flags-note', className: 'callout', role: 'note' },
      codicon('circle-outline'),
      el('p', {},
        el('strong', { text: all ? 'requires_grad was not saved.' : `requires_grad was not saved for ${formatExact(p.not_stored)} of ${formatExact(p.elements)} parameter elements.` }),
        el('span', { text: all
          ? ' This file holds tensors only (a state_dict): after model.load_state_dict(...) every parameter is trainable, frozen layers included. Freeze them again in code after loading.'
          : ' Those come from a state_dict inside the file: after load_state_dict they are trainable.' })));
  }

  // ---------- the summary ----------
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
    const stored = p.not_stored < p.elements;
    const share = (n) => (p.elements > 0 ? `${((100 * n) / p.elements).toFixed(n > 0 && n < p.elements ? 1 : 0)}%` : '0%');
    const metadata = Object.entries(result.metadata || {});
    const dtypes = Object.entries(s.bytes_by_dtype);
    const devices = Object.entries(s.locations);
    return el('section', { id: 'summary', 'aria-label': 'Summary' },
      el('div', { className: 'cards' },
        el('div', { className: 'card' },
          el('h2', { text: 'Contents' }),
          stat('summary-tensors', 'Tensors', s.tensors),
          s.modules > 0 ? stat('summary-modules', 'Modules', s.modules) : null,
          stat('summary-size', 'File size', result.size, formatBytes(result.size)),
          stat('summary-tensor-bytes', 'Tensor bytes', s.tensor_bytes, formatBytes(s.tensor_bytes)),
          s.storage_bytes !== s.tensor_bytes ? stat('summary-storage-bytes', 'Storage bytes', s.storage_bytes, formatBytes(s.storage_bytes)) : null,
          dtypes.length > 0 ? el('p', { id: 'summary-dtypes', className: 'muted fine', text: dtypes.sort((a, b) => b[1] - a[1]).map(([d, n]) => `${d} ${formatBytes(n)}`).join(' · ') }) : null,
          devices.length > 0 ? el('p', { id: 'summary-devices', className: 'muted fine', text: devices.sort((a, b) => b[1] - a[1]).map(([d, n]) => `${d} ×${formatExact(n)}`).join(' · ') }) : null),
        renderRoles(s.roles),
        el('div', { className: 'card' },
          el('h2', { text: 'Model parameters' }),
          stat('summary-parameters', 'Elements', p.elements),
          stored ? stat('summary-trainable', 'Trainable', p.trainable, undefined, 'trainable') : null,
          stored ? stat('summary-frozen', 'Frozen', p.frozen, undefined, 'frozen') : null,
          stored && p.not_stored > 0 ? stat('summary-unknown', 'Flag not saved', p.not_stored, undefined, 'unknown') : null,
          stored ? el('div', { className: 'param-bar', role: 'img', 'aria-label': `trainable ${share(p.trainable)}, frozen ${share(p.frozen)}` },
            el('span', { className: 'seg trainable', style: { width: share(p.trainable) } }),
            el('span', { className: 'seg frozen', style: { width: share(p.frozen) } }),
            el('span', { className: 'seg unknown', style: { width: share(p.not_stored) } })) : null,
          !stored && p.elements > 0 ? el('p', { className: 'muted note', text: 'requires_grad not saved (see above)' }) : null)),
      metadata.length > 0 ? el('details', { className: 'metadata' },
        el('summary', { text: `Metadata (${metadata.length})` }),
        keyValueList(Object.fromEntries(metadata), String)) : null);
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
  let table;
  let viewport;
  let spacer;
  let rowCount;
  let filterInput;
  let headerButtons = [];

  function renderWorkspace() {
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
    return el('section', { id: 'workspace', 'aria-label': 'Tensors' },
      el('div', { className: 'toolbar' }, el('div', { className: 'filter-box' }, codicon('filter'), filterInput), rowCount),
      table,
      renderStatsPane());
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
  function applyQuery(filter, sort, descending, keep = selectedTensor()?.path ?? state.selectPath) {
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
    vscode.postMessage({ type: 'tensors', body: { requestId, filter: state.filter, sort: state.sort, descending: state.descending, ...body } });
    return requestId;
  }

  function requestPage(page) {
    if (state.waiting || state.pages.has(page) || [...state.inFlight.values()].some((r) => r.page === page && r.generation === state.generation)) {
      return;
    }
    const requestId = tensorsRequest({ offset: page * PAGE_SIZE, limit: PAGE_SIZE });
    state.inFlight.set(requestId, { page, generation: state.generation });
  }

  /** Asks where the tensor at `path` is in this filter and order, to select it (and show its values). */
  function locate(path, showValues) {
    state.selectPath = path;
    if (state.waiting) {
      return;
    }
    const requestId = tensorsRequest({ offset: 0, limit: 0, rowOf: path });
    state.inFlight.set(requestId, { locate: path, showValues, generation: state.generation });
  }

  function onTensors(body) {
    const request = state.inFlight.get(body.requestId);
    state.inFlight.delete(body.requestId);
    if (!request || request.generation !== state.generation) {
      return;
    }
    state.total = body.total;
    if (request.locate) {
      onLocated(request, body.row);
    } else {
      state.pages.set(request.page, body.tensors);
      if (!state.rowsShown && body.tensors.length > 0) {
        state.rowsShown = true;
        requestAnimationFrame(() => vscode.postMessage({ type: 'shown', body: { what: 'rows', at: Date.now() } }));
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

  function onTensorsFailed(body) {
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

  function selectedTensor() {
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

  function renderRows() {
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
    return row;
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
      vscode.postMessage({ type: 'revealInTree', body: { path: tensor.path, focus } });
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
        vscode.postMessage({ type: 'copy', body: { text: tensor.key } });
      }
    } else {
      return;
    }
    interacted();
    event.preventDefault();
  }

  // ---------- the values pane (pthscope/stats of one tensor) ----------
  let statsPane;

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

  function renderStatsPane() {
    statsPane = el('section', { id: 'stats', 'aria-label': 'Tensor values', 'aria-live': 'polite' },
      el('p', { className: 'muted', text: 'Select a tensor to see its values: the first ones as they are, min, max, mean, std and a histogram.' }));
    return statsPane;
  }

  function showStats(path, key) {
    if (!statsPane || (state.statsPath && JSON.stringify(state.statsPath) === JSON.stringify(path))) {
      return;
    }
    state.statsPath = path;
    state.statsRequestId += 1;
    bringIntoView(document.getElementById('workspace'));
    statsPane.replaceChildren(statsTitle(key ?? path.join('.')), el('p', { className: 'muted', text: 'Reading this tensor’s bytes… nothing is executed.' }));
    statsPane.setAttribute('aria-busy', 'true');
    vscode.postMessage({ type: 'stats', body: { requestId: state.statsRequestId, path } });
  }

  /** Scrolls the page so that all of `element` (the table and the values pane) is on screen, if it is not. */
  function bringIntoView(element) {
    const box = element?.getBoundingClientRect();
    if (box && (box.top < 0 || box.bottom > window.innerHeight)) {
      element.scrollIntoView({ block: box.height > window.innerHeight ? 'start' : 'nearest' });
    }
  }

  function statsTitle(key) {
    return el('h2', {}, el('span', { text: 'Values of ' }), el('code', { id: 'stats-key', text: key }));
  }

  function onStats(body) {
    if (!statsPane || body.requestId !== state.statsRequestId) {
      return;
    }
    statsPane.setAttribute('aria-busy', 'false');
    const s = body.stats;
    if (!s) {
      if (state.waiting) {
        return; // the file is being read again; its values come after
      }
      const path = state.statsPath;
      statsPane.replaceChildren(statsTitle(path ? path.join('.') : ''),
        el('div', { className: 'problem error', role: 'alert' }, codicon('error'),
          el('div', { className: 'problem-text' }, el('span', { id: 'stats-error', className: 'problem-message', text: body.error || 'no statistics' })),
          el('button', { className: 'button small', onclick: () => { state.statsPath = null; showStats(path, null); } }, codicon('refresh'), el('span', { text: 'Retry' }))));
      state.statsPath = null; // asking again may work (a file fixed on disk)
      return;
    }
    const about = `${s.dtype} [${s.shape.join(', ')}] · ${countOf(s.numel, 'element')} · computed with ${s.engine}`
      + (s.sampled ? ` · statistics of a sample of ${formatExact(s.sample_size)}` : '');
    const parts = [statsTitle(s.key), el('p', { className: 'muted', id: 'stats-about', text: about })];
    if (s.first_values && s.first_values.length > 0) {
      parts.push(renderValues(s));
    }
    if (s.numel > 1) {
      const float = isFloat(s.dtype);
      parts.push(el('div', { className: 'stats-grid' },
        stat('stats-min', 'Min', s.min, formatValue(s.min)),
        stat('stats-max', 'Max', s.max, formatValue(s.max)),
        stat('stats-mean', 'Mean', s.mean, formatValue(s.mean)),
        stat('stats-std', 'Std', s.std, formatValue(s.std)),
        stat('stats-zeros', 'Zeros', s.zeros),
        // integers and bools hold no NaN or inf: only floats show their counts
        float ? stat('stats-nan', 'NaN', s.nan, undefined, s.nan > 0 ? 'alarm' : '') : null,
        float ? stat('stats-posinf', '+inf', s.posinf, undefined, s.posinf > 0 ? 'alarm' : '') : null,
        float ? stat('stats-neginf', '−inf', s.neginf, undefined, s.neginf > 0 ? 'alarm' : '') : null));
      if (s.histogram) {
        const n = s.histogram.counts.length;
        const width = (s.histogram.max - s.histogram.min) / n;
        parts.push(bars(s.histogram.counts.map((c, i) => ({
          count: c, label: `[${formatValue(s.histogram.min + i * width)}, ${formatValue(s.histogram.min + (i + 1) * width)}${i === n - 1 ? ']' : ')'}`,
        })), formatValue(s.histogram.min), formatValue(s.histogram.max)));
      } else if (s.values) {
        parts.push(bars(s.values.map(([v, c]) => ({ count: c, label: `${formatValue(v)}`, tick: true })), '', ''));
      }
    }
    statsPane.replaceChildren(...parts);
  }

  /** The tensor's first values as they are: one value, a small matrix, or a row-major list. */
  function renderValues(s) {
    const values = s.first_values;
    const all = values.length === s.numel;
    const label = all ? (s.numel === 1 ? 'Value' : `All ${countOf(s.numel, 'value')}`) : `First ${formatExact(values.length)} of ${countOf(s.numel, 'value')} (row-major)`;
    let body;
    const cols = s.shape[s.shape.length - 1];
    if (s.numel === 1) {
      body = el('code', { id: 'stats-value', className: 'single-value', text: values[0] });
    } else if (s.shape.length === 2 && cols <= 16 && values.length >= cols) {
      const rows = [];
      for (let r = 0; r * cols < values.length; r++) {
        rows.push(el('tr', {}, values.slice(r * cols, (r + 1) * cols).map((v) => el('td', { text: v }))));
      }
      body = el('div', { className: 'matrix-box' }, el('table', { id: 'stats-values', className: 'matrix' }, el('tbody', {}, rows)));
    } else {
      body = el('code', { id: 'stats-values', className: 'value-list', text: `${values.join(', ')}${all ? '' : ', …'}` });
    }
    return el('div', { className: 'first-values' }, el('h3', { text: label }), body);
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
    const again = state.result !== null;
    const keep = again ? (selectedTensor()?.path ?? state.selectPath) : state.selectPath;
    const statsPath = state.statsPath;
    state.result = result;
    state.waiting = false;
    state.total = result.summary.tensors;
    state.columns = COLUMNS.filter((c) => !c.flags || result.summary.roles.parameter.not_stored < result.summary.roles.parameter.elements || result.summary.roles.parameter.tensors === 0);
    state.pages.clear();
    state.inFlight.clear();
    state.statsPath = null;
    viewport = undefined;
    statsPane = undefined;
    const app = document.getElementById('app');
    document.getElementById('format').textContent = result.format;
    clearStatus();
    for (const old of app.querySelectorAll(':scope > section:not(#restricted-mode)')) {
      old.remove();
    }
    const parts = [renderProblems(result), renderSafety(result), renderFlagsNote(result)];
    if (result.root !== null || result.summary.tensors > 0) {
      parts.push(renderSummary(result), renderWorkspace());
    } else if (result.errors.length > 0) {
      setStatus('This file could not be read (see above).', 'error', true);
    }
    app.append(...parts.filter(Boolean));
    app.setAttribute('aria-busy', 'false');
    requestAnimationFrame(() => vscode.postMessage({ type: 'shown', body: { what: 'summary', at: Date.now() } }));
    if (viewport) {
      applyQuery(state.filter, state.sort, state.descending, keep);
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
    if (rowCount) {
      rowCount.textContent = '';
    }
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
    if (!viewport) {
      state.pendingReveal = body;
      return;
    }
    if (body.tensor) {
      state.statsPath = null;
      locate(body.path, true);
    } else {
      filterInput.value = body.key ? `${body.key}.` : '';
      applyQuery(filterInput.value, state.sort, state.descending);
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
    }
  });
  window.addEventListener('resize', () => requestAnimationFrame(renderRows));
  vscode.postMessage({ type: 'ready', body: { loadingAt: performance.timeOrigin, readyAt: Date.now() } });
})();
