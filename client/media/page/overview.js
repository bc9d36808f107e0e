// @ts-check
// Above the table: the file's problems, the one-line safety verdict (details behind it), the
// note that requires_grad was not saved (said once), and the summary cards.
import { codicon, countOf, el, formatBytes, formatExact, withCode } from './dom.js';
import { post } from './state.js';

/** What each role the server assigns is called. */
const ROLE_LABELS = { parameter: 'model parameters', buffer: 'buffers', optimizer_state: 'optimizer state', other: 'other tensors' };

export function renderProblems(result) {
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

/** How the pickle uses a global, in counts: "named 2×, 62 objects rebuilt, state set 62×". */
function usesText(uses) {
  const times = (n) => `${formatExact(n)}×`;
  return [
    uses.referenced ? `named ${times(uses.referenced)}` : '',
    uses.called ? `called ${times(uses.called)} (${(uses.arguments || []).map((a) => countOf(a, 'argument')).join(', ')})` : '',
    uses.rebuilt ? `${countOf(uses.rebuilt, 'object')} rebuilt` : '',
    uses.state ? `state set ${times(uses.state)}` : '',
    uses.written ? `written into ${times(uses.written)}` : '',
    uses.planted && uses.planted.length ? `planted as ${uses.planted.join(', ')}` : '',
  ].filter(Boolean).join(', ');
}

/**
 * One line with the server's verdict; the globals, what each would do and how the pickle
 * uses it behind an expander. Red only when a load would run code.
 */
export function renderSafety(result) {
  if (!result.safety) {
    return null;
  }
  const { level, headline } = result.safety; // the server's verdict (reader/safety.py)
  const risky = result.globals.filter((g) => g.risk !== 'safe');
  const safe = result.globals.filter((g) => g.risk === 'safe');
  const { call, weights_only: restricts, own_types_only: ownTypesOnly, weights_only_refuses: opcodeRefusal, refuses: loaderRefusal } = result.loader;
  const refused = restricts && Boolean(opcodeRefusal);
  const icon = { dangerous: 'warning', unknown: 'info', safe: 'shield' }[level];
  const details = el('div', { className: 'banner-details' },
    loaderRefusal ? el('p', { className: 'refusal', text: `${call} refuses it: ${loaderRefusal}.` })
      : refused ? el('p', { className: 'refusal', text: `weights_only=True refuses it: ${opcodeRefusal}.` }) : null,
    el('p', { className: 'muted', text: risky.length > 0
      ? `pthscope imported and called none of them. What ${ownTypesOnly ? 'each is' : `${restricts ? 'torch.load(weights_only=False)' : call} would do with each`}:`
      : restricts && !refused ? 'torch.load(weights_only=True) accepts these:' : 'Each is on torch\'s allow-list:' }),
    risky.length > 0 ? el('ul', { className: 'globals' },
      risky.map((g) => el('li', { className: `global ${g.risk}` },
        el('span', { className: 'risk', text: g.risk === 'unknown' ? 'imports' : g.risk }),
        el('code', { className: 'global-name', text: g.name }),
        el('span', { className: 'uses muted', text: usesText(g.uses) + (g.unread ? ` · in a pickle ${call} does not read` : '') }),
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

/** A file that is one part of a set: which part, and a way to open the whole set. */
export function renderPartOf(result) {
  const of = result.part_of;
  if (!of) {
    return null;
  }
  const what = { sharded: 'shard', 'torch-distributed': 'data file', 'torch-ranks': 'rank file' }[of.format] || 'part';
  return el('section', { id: 'part-of', className: 'banner unknown', role: 'note' },
    codicon('files'),
    el('span', { text: `${what} ${of.part} of ${of.parts} of ${of.file}` }),
    el('button', { id: 'open-set', className: 'secondary', text: 'Open the whole set', onclick: () => post('openSet', { file: of.file }) }));
}

/** The files of a checkpoint made of several: each with its format, size and tensors. */
function renderParts(result) {
  if (!result.parts || result.parts.length === 0) {
    return null;
  }
  return el('details', { id: 'parts', className: 'metadata' },
    el('summary', { text: `Files (${result.parts.length})` }),
    el('dl', { className: 'kv' }, result.parts.flatMap((part) => [
      el('dt', { text: part.file.split(/[\\/]/).pop() }),
      el('dd', { text: `${part.format}, ${formatBytes(part.size)}, ${countOf(part.tensors, 'tensor')}` })])));
}

/** For a state_dict: requires_grad was not saved, and what that means, said once. */
export function renderFlagsNote(result) {
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

export function stat(id, label, value, text, extraClass) {
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

export function renderSummary(result) {
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
