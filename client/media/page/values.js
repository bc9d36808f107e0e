// @ts-check
// The values pane: the selected tensor's first values as they are, its statistics (NaN and inf
// counts for floating-point tensors only) and a histogram of CSS bars, from pthscope/stats.
import { codicon, countOf, el, formatExact, formatValue, isFloat } from './dom.js';
import { stat } from './overview.js';
import { post, state } from './state.js';

let statsPane;

export function renderStatsPane() {
  statsPane = el('section', { id: 'stats', 'aria-label': 'Tensor values', 'aria-live': 'polite' },
    el('p', { className: 'muted', text: 'Select a tensor to see its values: the first ones as they are, min, max, mean, std and a histogram.' }));
  return statsPane;
}

export function showStats(path, key) {
  if (!statsPane || (state.statsPath && JSON.stringify(state.statsPath) === JSON.stringify(path))) {
    return;
  }
  state.statsPath = path;
  state.statsRequestId += 1;
  bringIntoView(document.getElementById('workspace'));
  statsPane.replaceChildren(statsTitle(key ?? path.join('.')), el('p', { className: 'muted', text: 'Reading this tensor’s bytes… nothing is executed.' }));
  statsPane.setAttribute('aria-busy', 'true');
  post('stats', { requestId: state.statsRequestId, path });
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

export function onStats(body) {
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
    + (s.magnitude ? ' · statistics of |x|' : '');
  const parts = [statsTitle(s.key), el('p', { className: 'muted', id: 'stats-about', text: about })];
  if (s.first_values && s.first_values.length > 0) {
    parts.push(renderValues(s));
  }
  if (s.numel > 1) {
    parts.push(...valuesParts(s, isFloat(s.dtype)));
  }
  statsPane.replaceChildren(...parts);
}

/** The statistics grid and histogram of a tensor's (or a node's) values; NaN and inf counts for floats only. */
function valuesParts(s, float) {
  const parts = [el('div', { className: 'stats-grid' },
    stat('stats-min', 'Min', s.min, formatValue(s.min)),
    stat('stats-max', 'Max', s.max, formatValue(s.max)),
    stat('stats-mean', 'Mean', s.mean, formatValue(s.mean)),
    stat('stats-std', 'Std', s.std, formatValue(s.std)),
    s.l2 === undefined ? null : stat('stats-l2', 'L2 norm', s.l2, formatValue(s.l2)),
    stat('stats-zeros', 'Zeros', s.zeros),
    float ? stat('stats-nan', 'NaN', s.nan, undefined, s.nan > 0 ? 'alarm' : '') : null,
    float ? stat('stats-posinf', '+inf', s.posinf, undefined, s.posinf > 0 ? 'alarm' : '') : null,
    float ? stat('stats-neginf', '−inf', s.neginf, undefined, s.neginf > 0 ? 'alarm' : '') : null)];
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

/** A tree node's statistics ("Show Statistics"): all its floating-point (else integer) tensors together. */
export function onModuleStats(body) {
  if (!statsPane) {
    return;
  }
  state.statsRequestId += 1; // a tensor's answer still on its way is no longer wanted
  state.statsPath = null;
  const s = body.stats;
  const title = el('h2', {}, el('span', { text: 'Values of ' }), el('code', { id: 'stats-key', text: s ? s.key || '(root)' : 'the node' }),
    el('span', { text: ' (all its tensors)' }));
  statsPane.setAttribute('aria-busy', 'false');
  if (!s) {
    statsPane.replaceChildren(title, el('div', { className: 'problem error', role: 'alert' }, codicon('error'),
      el('span', { id: 'stats-error', text: body.error || 'no statistics' })));
    return;
  }
  const dtypes = Object.entries(s.dtypes).map(([d, n]) => `${n} ${d}`).join(', ');
  const about = `${countOf(s.tensors, 'tensor')} (${dtypes}) · ${countOf(s.numel, 'element')}`
    + (s.left_out ? ` · ${formatExact(s.left_out)} left out (integer beside floating-point, or unreadable)` : '');
  const float = Object.keys(s.dtypes).some(isFloat);
  statsPane.replaceChildren(title, el('p', { className: 'muted', id: 'stats-about', text: about }), ...valuesParts(s, float));
  bringIntoView(statsPane);
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

/** Forgets the pane (the page renders anew). */
export function dropStatsPane() {
  statsPane = undefined;
}
