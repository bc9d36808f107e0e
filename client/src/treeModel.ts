/**
 * How a checkpoint node looks in the side panel, as plain data: label, description, icon,
 * menu context and tooltip markdown. Pure (no `vscode`), so it is unit-tested with node's test
 * runner; tree.ts turns these into TreeItems. Nothing here knows file formats: it renders the
 * NodeSummary the server sends.
 */
import { formatBytes, formatCount, formatExact, formatRoleSummary, formatShape } from './format';
import type { NodeSummary, PathElement, ProblemJson, Role, RoleTableJson, ScanMark, TensorJson } from './protocol';

export interface NodeLook {
  label: string;
  description: string;
  /** Codicon id and theme colour id (undefined: the default foreground). */
  icon: { id: string; color?: string };
  contextValue: string;
  expandable: boolean;
}

const CONTAINER_ICONS: Record<string, string> = {
  dict: 'symbol-namespace',
  list: 'symbol-array',
  tuple: 'symbol-array',
  set: 'symbol-array',
  object: 'symbol-class',
  module: 'layers',
  value: 'symbol-constant',
  group: 'folder',
};

/** How each role is named. */
export const ROLE_LABELS: Record<Role, string> = {
  parameter: 'model parameters',
  buffer: 'buffers',
  optimizer_state: 'optimizer state',
  other: 'other tensors',
};

/** What one tensor of each role is. */
const ROLE_OF_A_TENSOR: Record<Role, string> = {
  parameter: 'model parameter',
  buffer: 'buffer',
  optimizer_state: 'optimizer state',
  other: 'other tensor',
};

const ROLE_ICONS: Record<Role, string> = {
  parameter: 'symbol-parameter',
  buffer: 'database',
  optimizer_state: 'graph-line',
  other: 'symbol-misc',
};

export function gradStateIcon(tensor: TensorJson): { id: string; color?: string } {
  if (tensor.role === 'buffer') {
    return { id: 'database', color: 'descriptionForeground' };
  }
  if (tensor.role === 'optimizer_state') {
    return { id: 'graph-line', color: 'descriptionForeground' };
  }
  switch (tensor.grad_state) {
    case 'trainable':
      return { id: 'flame', color: 'charts.green' };
    case 'frozen':
      return { id: 'lock', color: 'charts.blue' };
    case 'not stored':
      return { id: 'circle-outline', color: 'disabledForeground' };
  }
}

export function gradStateText(tensor: TensorJson): string {
  if (tensor.role === 'buffer') {
    return 'buffer (no gradient)';
  }
  if (tensor.role === 'optimizer_state') {
    return 'optimizer state (no gradient)';
  }
  switch (tensor.grad_state) {
    case 'trainable':
      return 'trainable (requires_grad=True)';
    case 'frozen':
      return 'frozen (requires_grad=False)';
    case 'not stored':
      return 'requires_grad not stored in this file';
  }
}

function shortType(type: string): string {
  return type.split('.').pop() ?? type;
}

export function nodeDescription(node: NodeSummary): string {
  if (node.tensor) {
    return `${formatShape(node.tensor.shape)} ${node.tensor.dtype}`;
  }
  const counts = node.counts ? formatRoleSummary(node.counts) : '';
  if (node.module) {
    const className = shortType(node.module.class);
    return counts ? `${className} · ${counts}` : className;
  }
  if (node.kind === 'value') {
    return node.value ?? shortType(node.type);
  }
  const items = `${formatCount(node.child_count)} ${node.child_count === 1 ? 'item' : 'items'}`;
  return [shortType(node.type), items, counts].filter(Boolean).join(' · ');
}

/** A node the last scan marked: an error (NaN/inf) or warning icon in the theme's colours. */
export function scanIcon(mark: ScanMark): { id: string; color: string } {
  return mark.severity === 'error' ? { id: 'error', color: 'errorForeground' } : { id: 'warning', color: 'editorWarning.foreground' };
}

export function nodeLook(node: NodeSummary): NodeLook {
  const description = nodeDescription(node);
  return {
    label: node.name === '' ? '(root)' : visibleText(node.name),
    description: visibleText(node.scan ? `${node.scan.label} · ${description}` : description),
    icon: node.scan ? scanIcon(node.scan) : node.tensor ? gradStateIcon(node.tensor) : { id: CONTAINER_ICONS[node.kind] ?? 'symbol-field' },
    contextValue: `pthscope.node.${node.kind}`,
    expandable: node.child_count > 0,
  };
}

/** Markdown for a tensor's tooltip: everything the file says about it. */
export function tensorTooltipMarkdown(tensor: TensorJson, tied: readonly string[] = tensor.shared_with, scan?: ScanMark): string {
  const rows: [string, string][] = [
    ...(scan ? [['scan', scan.label] as [string, string]] : []),
    ['requires_grad', tensor.kind === 'parameter' || tensor.requires_grad ? String(tensor.requires_grad) : 'not stored'],
    ['state', gradStateText(tensor)],
    ['role', ROLE_OF_A_TENSOR[tensor.role]],
    ['saved as', tensor.kind],
    ['dtype', tensor.dtype],
    ['shape', formatShape(tensor.shape)],
    ['numel', formatExact(tensor.numel)],
    ['bytes', `${formatExact(tensor.nbytes)} (${formatBytes(tensor.nbytes)})`],
    ['location', tensor.location],
    ['stride', formatShape(tensor.stride)],
    ['storage offset', formatExact(tensor.storage_offset)],
  ];
  if (tensor.storage) {
    const storageBytes = tensor.storage_nbytes === null ? '' : `, ${formatBytes(tensor.storage_nbytes)}`;
    rows.push(['storage', `${tensor.storage}${storageBytes}`]);
  }
  if (tied.length > 0) {
    rows.push(['tied storage', tied.join(', ')]);
  }
  return [`**${markdownText(tensor.key) || '(empty key)'}**`, '', '| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${markdownCode(v, true)} |`)].join('\n');
}

/** Markdown for a module's or container's tooltip. */
export function nodeTooltipMarkdown(node: NodeSummary): string {
  if (node.tensor) {
    return tensorTooltipMarkdown(node.tensor, node.tensor.shared_with, node.scan);
  }
  const lines = [`**${node.key ? markdownText(node.key) : '(root)'}**`, ''];
  if (node.scan) {
    lines.push(`scan: ${markdownCode(node.scan.label)}`);
  }
  if (node.type) {
    lines.push(`type: ${markdownCode(node.type)}`);
  }
  if (node.module) {
    lines.push(`class: ${markdownCode(node.module.class)}`);
    if (node.module.training !== null) {
      lines.push(`training: \`${String(node.module.training)}\``);
    }
  }
  if (node.counts) {
    lines.push(...roleLines(node.counts));
  }
  if (node.value !== undefined) {
    lines.push(`value: ${markdownCode(node.value)}`);
  }
  if (node.child_count > 0) {
    lines.push(`children: ${formatExact(node.child_count)}`);
  }
  return lines.join('  \n');
}

/** One line per role the subtree holds: "model parameters: 1,552 elements in 14 tensors (6.1 KiB)". */
export function roleLines(counts: RoleTableJson): string[] {
  const lines: string[] = [];
  for (const row of roleRows(counts)) {
    if (row.counts.tensors > 0) {
      lines.push(`${row.label}: ${row.description}`);
    }
  }
  const p = counts.parameter;
  if (p.elements > 0) {
    lines.push(`parameters by flag: trainable ${formatExact(p.trainable)}, frozen ${formatExact(p.frozen)}, flag not stored ${formatExact(p.not_stored)}`);
  }
  return lines;
}

export interface RoleRow {
  role: Role;
  label: string;
  /** "14 tensors · 1,552 elements · 6.1 KiB", or "none". */
  description: string;
  icon: string;
  counts: RoleTableJson[Role];
}

/** The roles of a role table (the tree's "Contents"), in the order the server sends them. */
export function roleRows(counts: RoleTableJson): RoleRow[] {
  return (Object.keys(counts) as Role[]).map((role) => {
    const c = counts[role];
    const description = c.tensors === 0
      ? 'none'
      : `${formatExact(c.tensors)} ${c.tensors === 1 ? 'tensor' : 'tensors'} · ${formatExact(c.elements)} elements · ${formatBytes(c.bytes)}`;
    return { role, label: ROLE_LABELS[role], description, icon: ROLE_ICONS[role], counts: c };
  });
}

/** Markdown for a role row's tooltip: for model parameters, their requires_grad flags. */
export function roleTooltipMarkdown(row: RoleRow, counts: RoleTableJson): string {
  const lines = [`**${row.label}**`, '', row.description];
  if (row.role === 'parameter' && counts.parameter.elements > 0) {
    const p = counts.parameter;
    lines.push('', `trainable ${formatExact(p.trainable)} · frozen ${formatExact(p.frozen)} · flag not stored ${formatExact(p.not_stored)} (elements)`);
  }
  return lines.join('  \n');
}

export function problemText(problem: ProblemJson): string {
  return visibleText(problem.where ? `${problem.message} (${problem.where})` : problem.message);
}

/** How many more children a "Load more" item would fetch, or 0 when all are loaded. */
export function remainingChildren(loaded: number, total: number): number {
  return Math.max(0, total - loaded);
}

/** A stable id for a node of a file, usable as a TreeItem id and a map key. */
export function nodeId(file: string, path: readonly PathElement[]): string {
  return `${file}\u0000${JSON.stringify(path)}`;
}

/**
 * Which of `children` leads to the node keyed `target`: the one with that key, else the one whose
 * key is the longest dotted prefix of it. Keys, not paths, because the server may group flat
 * dotted keys ("model.layers.0.weight") under "group" nodes that are not on the path.
 */
export function childTowards<T extends { key: string }>(children: readonly T[], target: string): T | undefined {
  const exact = children.find((c) => c.key === target);
  if (exact) {
    return exact;
  }
  let best: T | undefined;
  for (const child of children) {
    if ((child.key === '' || target.startsWith(`${child.key}.`)) && child.key.length >= (best?.key.length ?? -1)) {
      best = child;
    }
  }
  return best;
}

// The one way file text enters tooltip Markdown (the server's hovers do the same in
// code_intel/markdown.py). Characters that do not print (controls, bidi overrides, NUL, line
// separators, lone surrogates, non-ASCII spaces) are shown as \u escapes, so a name stays on
// one line and cannot reorder or hide what follows.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]|(?! )\p{Zs}/gu;

/** `text` with every non-printing character written as `\xNN`, `\uNNNN` or `\u{N}`. */
export function visibleText(text: string): string {
  return text.replace(INVISIBLE, (c) => {
    const code = c.codePointAt(0) ?? 0;
    if (code < 0x100) {
      return { 9: '\\t', 10: '\\n', 13: '\\r' }[code] ?? `\\x${code.toString(16).padStart(2, '0')}`;
    }
    return code < 0x10000 ? `\\u${code.toString(16).padStart(4, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

/** Inline Markdown text: every ASCII punctuation character escaped (no emphasis, link, HTML,
 * entity, table cell or autolinked URL can come from `text`), invisible characters shown. */
export function markdownText(text: string): string {
  return visibleText(text).replace(/[!-/:-@[-`{-~]/g, '\\$&');
}

/** An inline code span no backtick in `text` can close; in a table cell, `|` is escaped so that
 * it cannot split the cell (GFM unescapes it inside the span). */
export function markdownCode(text: string, inTable = false): string {
  let shown = visibleText(text);
  const longest = Math.max(0, ...(shown.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  if (shown.trim() === '') {
    shown = shown || ' ';
  } else if (/^[ `]|[ `]$/.test(shown)) {
    shown = ` ${shown} `; // CommonMark strips one space from each side of a padded span
  }
  return `${fence}${inTable ? shown.replace(/\|/g, '\\|') : shown}${fence}`;
}
