/**
 * How a checkpoint node looks in the side panel, as plain data: label, description, icon,
 * menu context and tooltip markdown. Pure (no `vscode`), so it is unit-tested with node's test
 * runner; tree.ts turns these into TreeItems. Nothing here knows file formats: it renders the
 * NodeSummary the server sends.
 */
import { countOf, formatBytes, formatExact, formatParameterCounts, formatRoleSummary, formatShape } from './format';
import type { NodeSummary, OpenResult, PathElement, ProblemJson, Role, RoleTableJson, ScanMark, TensorJson } from './protocol';

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
    case 'not stored': // a state_dict's parameter: the file's row says once what that means
      return { id: 'symbol-parameter', color: 'descriptionForeground' };
  }
}

/** The requires_grad of a tensor, when the file says it: only model parameters whose flag is saved. */
export function requiresGradText(tensor: TensorJson): string | undefined {
  if (tensor.role !== 'parameter' || tensor.grad_state === 'not stored') {
    return undefined;
  }
  return tensor.grad_state === 'trainable' ? 'True (trainable)' : 'False (frozen)';
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
  const items = countOf(node.child_count, 'item');
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

/** Where a tensor's values are, in words, when that is worth saying: tied to other tensors, or a view. */
export function storageText(tensor: TensorJson, tied: readonly string[]): string | undefined {
  const parts: string[] = [];
  if (tied.length > 0) {
    parts.push(`shared with ${tied.join(', ')}`);
  }
  const contiguous = tensor.stride.every((s, i) => s === tensor.shape.slice(i + 1).reduce((a, d) => a * Math.max(d, 1), 1));
  const larger = tensor.storage_nbytes !== null && tensor.storage_nbytes > tensor.nbytes;
  if (larger || tensor.storage_offset > 0 || !contiguous) {
    const of = tensor.storage_nbytes === null ? 'its storage' : `a ${formatBytes(tensor.storage_nbytes)} storage`;
    const offset = tensor.storage_offset > 0 ? ` from element ${formatExact(tensor.storage_offset)}` : '';
    parts.push(`a view of ${of}${offset}${contiguous ? '' : `, stride ${formatShape(tensor.stride)}`}`);
  }
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** Markdown for a tensor's tooltip: what the file says about it, each fact once. */
export function tensorTooltipMarkdown(tensor: TensorJson, tied: readonly string[] = tensor.shared_with, scan?: ScanMark): string {
  const rows: [string, string][] = [
    ...(scan ? [['scan', scan.label] as [string, string]] : []),
    ['shape', `${formatShape(tensor.shape)} ${tensor.dtype}`],
    ['size', `${countOf(tensor.numel, 'element', 'elements', formatExact)} · ${formatBytes(tensor.nbytes)}`],
  ];
  const requiresGrad = requiresGradText(tensor);
  if (requiresGrad) {
    rows.push(['requires_grad', requiresGrad]);
  }
  rows.push(['role', roleText(tensor)], ['device', tensor.location]);
  const storage = storageText(tensor, tied);
  if (storage) {
    rows.push(['storage', storage]);
  }
  if (tensor.layout !== 'strided') {
    rows.push(['layout', tensor.layout]);
  }
  return [`**${markdownText(tensor.key) || '(empty key)'}**`, '', '| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${markdownCode(v, true)} |`)].join('\n');
}

/** "model parameter", with how it was saved when that is not what its role implies. */
export function roleText(tensor: TensorJson): string {
  const role = ROLE_OF_A_TENSOR[tensor.role];
  const usual = (tensor.role === 'parameter' && tensor.kind === 'parameter') || (tensor.role === 'buffer' && tensor.kind === 'buffer');
  return usual || tensor.kind === 'tensor' ? role : `${role} (saved as ${tensor.kind === 'ndarray' ? 'a numpy array' : `a ${tensor.kind}`})`;
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
  if (node.module) {
    lines.push(`class: ${markdownCode(node.module.class)}`);
    if (node.module.training !== null) {
      lines.push(`training: \`${String(node.module.training)}\``);
    }
  } else if (node.type) {
    lines.push(`type: ${markdownCode(node.type)}`);
  }
  if (node.value !== undefined) {
    lines.push(`value: ${markdownCode(node.value)}`);
  }
  if (node.counts) {
    lines.push(...roleLines(node.counts));
  }
  return lines.join('  \n');
}

/** One line per role the subtree holds ("model parameters: 14 tensors · 1,552 elements · 6.1 KiB"), then the flags. */
export function roleLines(counts: RoleTableJson): string[] {
  const lines = roleRows(counts).filter((row) => row.counts.tensors > 0).map((row) => `${row.label}: ${row.description}`);
  const flags = requiresGradLine(counts);
  return flags ? [...lines, flags] : lines;
}

/** The parameters' requires_grad in elements: "requires_grad: 33,418 trainable, 9,808 frozen". */
export function requiresGradLine(counts: RoleTableJson): string | undefined {
  const p = counts.parameter;
  if (p.elements === 0) {
    return undefined;
  }
  const stored = [p.trainable > 0 ? `${formatExact(p.trainable)} trainable` : '', p.frozen > 0 ? `${formatExact(p.frozen)} frozen` : ''].filter(Boolean);
  if (p.not_stored === 0) {
    return `requires_grad: ${stored.join(', ')} (elements)`;
  }
  const lost = `requires_grad not saved for ${p.not_stored === p.elements ? 'any' : formatExact(p.not_stored)} of them: trainable after load_state_dict`;
  return stored.length > 0 ? `requires_grad: ${stored.join(', ')}; ${lost}` : lost;
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
      : `${countOf(c.tensors, 'tensor', 'tensors', formatExact)} · ${countOf(c.elements, 'element', 'elements', formatExact)} · ${formatBytes(c.bytes)}`;
    return { role, label: ROLE_LABELS[role], description, icon: ROLE_ICONS[role], counts: c };
  });
}

/** Markdown for a role row's tooltip: for model parameters, their requires_grad flags. */
export function roleTooltipMarkdown(row: RoleRow, counts: RoleTableJson): string {
  const flags = row.role === 'parameter' ? requiresGradLine(counts) : undefined;
  return [`**${row.label}**`, '', row.description, ...(flags ? ['', flags] : [])].join('  \n');
}

/** The side panel's root row: the file, its class and its parameters' totals. */
export interface FileLook {
  label: string;
  description: string;
  tooltip: string;
}

export function fileLook(result: OpenResult): FileLook {
  const name = result.file.split(/[\\/]/).pop() ?? result.file;
  const root = result.root;
  const what = root === null ? '' : root.module ? shortType(root.module.class) : shortType(root.type);
  const p = result.summary.roles.parameter;
  let totals: string;
  if (root === null) {
    totals = 'could not be read';
  } else if (p.elements === 0) {
    totals = countOf(result.summary.tensors, 'tensor');
  } else if (p.not_stored === p.elements) {
    totals = `${countOf(p.elements, 'param')} · requires_grad not saved`;
  } else {
    totals = formatParameterCounts(p);
  }
  const lines = [`**${markdownText(name)}**`, '', markdownText(result.file), `format: ${markdownCode(result.format)} · ${formatBytes(result.size)}`];
  if (root?.module) {
    lines.push(`class: ${markdownCode(root.module.class)}`);
  }
  if (root?.counts) {
    lines.push(...roleLines(root.counts));
  }
  return { label: visibleText(name), description: visibleText([what, totals].filter(Boolean).join(' · ')), tooltip: lines.join('  \n') };
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

/** The server's largest page of children (lsp/protocol.py MAX_PAGE). */
export const MAX_PAGE = 10_000;

/**
 * How many children to ask for, from `loaded` on, so that index `target` is loaded: whole pages
 * of `pageSize` (the tree's Load more stays aligned), at most MAX_PAGE at a time.
 */
export function pagesUpTo(loaded: number, target: number, pageSize: number): number {
  const needed = target + 1 - loaded;
  return Math.min(MAX_PAGE, Math.max(pageSize, Math.ceil(needed / pageSize) * pageSize));
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
