// @ts-check
// The file's last scan for NaN/Inf: a banner above the summary with the server's summary and,
// when the scan just ran, its bad tensors (each a link to its row); the table marks their rows
// (table.js markRow).
import { codicon, countOf, el, formatExact } from './dom.js';
import { locate, reloadMarks } from './table.js';

const FINDING_LABELS = { nan: 'with NaN', inf: 'with inf', all_zero: 'all zero', extreme: 'with extreme values', fp16_overflow: 'past float16\'s range' };
const LISTED = 20;

/** The scan's section (summary null: none); `result`: the report, when the scan just ran. */
export function renderScan(summary, result) {
  document.getElementById('scan')?.remove();
  if (!summary) {
    return;
  }
  const counts = Object.entries(summary.counts).filter(([, n]) => n > 0).map(([kind, n]) => `${n} ${FINDING_LABELS[kind] || kind}`);
  const text = summary.bad === 0
    ? `No NaN, inf, extreme or all-zero values in ${countOf(summary.scanned, 'tensor')}.`
    : `${formatExact(summary.bad)} bad tensors of ${formatExact(summary.scanned)} scanned: ${counts.join(', ')}.`;
  const severity = summary.errors > 0 ? 'error' : summary.bad > 0 ? 'warning' : 'safe';
  const bad = result ? result.bad : [];
  const section = el('section', {
    id: 'scan', className: `banner ${severity === 'error' ? 'dangerous' : severity === 'warning' ? 'unknown' : 'safe'}`,
    'aria-label': 'Scan for NaN/Inf', 'data-bad': summary.bad, 'data-errors': summary.errors,
  },
  el('div', { className: 'banner-title' }, codicon(severity === 'safe' ? 'pass' : severity),
    el('strong', { id: 'scan-summary', text: text + (summary.complete ? '' : ' (stopped before the end)') })),
  bad.length ? el('ul', { className: 'globals scan-list' }, bad.slice(0, LISTED).map((t) => el('li', { className: `global ${t.severity === 'error' ? 'dangerous' : 'unknown'}` },
    el('span', { className: 'risk', text: t.severity }),
    el('button', { className: 'link', title: 'Show in the table', text: t.key, onclick: () => locate(t.path, true) }),
    el('span', { className: 'muted', text: t.findings.map((f) => f.message).join('; ') })))) : null,
  bad.length > LISTED ? el('p', { className: 'muted', text: `… and ${formatExact(bad.length - LISTED)} more, marked in the table.` }) : null);
  document.getElementById('summary')?.before(section);
}

/** A scan ended: its banner, and the table's rows again with their marks. */
export function onScanned(body) {
  renderScan(body.summary, body.result);
  reloadMarks();
}
