/**
 * Text for numbers, sizes and shapes as the tree and tooltips show them. Pure: no `vscode`.
 * (The checkpoint page has its own copy in media/page/dom.js, which runs in the webview.)
 */
import type { ParameterCountsJson, RoleTableJson } from './protocol';

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit] ?? ''}`;
}

/** 1234567 → "1.2M"; small numbers stay exact. */
export function formatCount(count: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [size, suffix] of units) {
    if (Math.abs(count) >= size) {
      const value = count / size;
      return `${value.toFixed(value >= 100 ? 0 : 1).replace(/\.0$/, '')}${suffix}`;
    }
  }
  return String(count);
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function formatExact(count: number): string {
  return count.toLocaleString('en-US');
}

/** A count and its noun, singular or plural: "1 tensor", "3 tensors", "1.2K buffers". */
export function countOf(count: number, singular: string, plural = `${singular}s`, format: (n: number) => string = formatCount): string {
  return `${format(count)} ${count === 1 ? singular : plural}`;
}

/**
 * Model parameters in elements, as PyTorch summaries count them: "1.2K trainable · 300 frozen";
 * where the file does not store requires_grad (a state_dict) just "432 params" — the file's root
 * says once what that means. "" when there are none.
 */
export function formatParameterCounts(counts: ParameterCountsJson): string {
  const parts: string[] = [];
  if (counts.trainable > 0) {
    parts.push(`${formatCount(counts.trainable)} trainable`);
  }
  if (counts.frozen > 0) {
    parts.push(`${formatCount(counts.frozen)} frozen`);
  }
  if (counts.not_stored > 0) {
    parts.push(parts.length > 0 ? `${formatCount(counts.not_stored)} without a stored flag` : countOf(counts.not_stored, 'param'));
  }
  return parts.join(' · ');
}

/**
 * What a subtree holds: its parameters (elements, as above), then the other roles in tensors:
 * "8 trainable · 3 buffers · 12 optimizer tensors · 1 other tensor".
 */
export function formatRoleSummary(counts: RoleTableJson): string {
  const { buffer, optimizer_state: optimizer, other } = counts;
  return [
    formatParameterCounts(counts.parameter),
    buffer.tensors > 0 ? countOf(buffer.tensors, 'buffer') : '',
    optimizer.tensors > 0 ? countOf(optimizer.tensors, 'optimizer tensor') : '',
    other.tensors > 0 ? countOf(other.tensors, 'other tensor') : '',
  ].filter(Boolean).join(' · ');
}
