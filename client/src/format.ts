/**
 * Text for numbers, sizes and shapes as the tree and tooltips show them. Pure: no `vscode`.
 * (The checkpoint page has its own copy in media/page.js, which runs in the webview.)
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

/** "1.2K trainable · 300 frozen", leaving out zero parts; "" when there are no parameters. */
export function formatParameterCounts(counts: ParameterCountsJson): string {
  const parts: string[] = [];
  if (counts.trainable > 0) {
    parts.push(`${formatCount(counts.trainable)} trainable`);
  }
  if (counts.frozen > 0) {
    parts.push(`${formatCount(counts.frozen)} frozen`);
  }
  if (counts.not_stored > 0) {
    parts.push(`${formatCount(counts.not_stored)} flag not stored`);
  }
  return parts.join(' · ');
}

/** Parameters as above, then the other roles a subtree holds: "8 trainable · 3 buffers · 1.2K optimizer state". */
export function formatRoleSummary(counts: RoleTableJson): string {
  const parts = [formatParameterCounts(counts.parameter)];
  const { buffer, optimizer_state: optimizer, other } = counts;
  if (buffer.tensors > 0) {
    parts.push(`${formatCount(buffer.tensors)} ${buffer.tensors === 1 ? 'buffer' : 'buffers'}`);
  }
  if (optimizer.tensors > 0) {
    parts.push(`${formatCount(optimizer.elements)} optimizer state`);
  }
  if (other.tensors > 0) {
    parts.push(`${formatCount(other.tensors)} other ${other.tensors === 1 ? 'tensor' : 'tensors'}`);
  }
  return parts.filter(Boolean).join(' · ');
}
