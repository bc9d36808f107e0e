/**
 * What the value commands say, as plain text, and which files a comparison takes. Pure (no
 * `vscode`), so it is unit-tested; valueCommands.ts shows it. Counts and findings come from the
 * server as they are; file text goes through `visibleText` before it is shown.
 */
import { formatBytes, formatExact } from './format';
import type { ConvertSummary, ScanResult } from './protocol';
import { visibleText } from './treeModel';

export type Level = 'info' | 'warning' | 'error';

export interface Message {
  level: Level;
  text: string;
}

function basename(file: string): string {
  return file.split(/[\\/]/).pop() ?? file;
}

function plural(n: number, noun: string): string {
  return `${formatExact(n)} ${noun}${n === 1 ? '' : 's'}`;
}

/** The notification after a scan: clean, suspect (warnings) or bad (NaN/inf). */
export function scanMessage(result: ScanResult): Message {
  const name = visibleText(basename(result.file));
  const errors = result.bad.filter((t) => t.severity === 'error');
  const warnings = result.bad.length - errors.length;
  const scanned = `${plural(result.scanned, 'tensor')} (${formatBytes(result.bytes)})`;
  const stopped = result.complete ? '' : ` Stopped after ${formatExact(result.scanned)} of ${formatExact(result.total)}.`;
  const unread = result.unreadable.length > 0 ? ` ${plural(result.unreadable.length, 'tensor')} could not be read.` : '';
  if (result.bad.length === 0) {
    return { level: 'info', text: `${name}: no NaN, inf, extreme or all-zero values in ${scanned}.${stopped}${unread}` };
  }
  const first = result.bad.slice(0, 3).map((t) => `${visibleText(t.key)} (${t.findings.map((f) => f.kind.replace('_', ' ')).join(', ')})`);
  const more = result.bad.length > 3 ? `, … ${formatExact(result.bad.length - 3)} more` : '';
  const counts = errors.length > 0
    ? `${plural(errors.length, 'tensor')} with NaN/inf${warnings > 0 ? `, ${formatExact(warnings)} suspect` : ''}`
    : plural(warnings, 'suspect tensor');
  return { level: errors.length > 0 ? 'error' : 'warning', text: `${name}: ${counts} in ${scanned}: ${first.join(', ')}${more}.${stopped}${unread}` };
}

/** The notification after a conversion. */
export function convertMessage(written: ConvertSummary): string {
  const parts = [`Wrote ${visibleText(basename(written.out))}: ${plural(written.tensors, 'tensor')}, ${formatBytes(written.bytes)}`
    + (written.model_only ? ' (the model\'s parameters and buffers)' : '')];
  const tied = Object.keys(written.aliases).length;
  if (tied > 0) {
    parts.push(`${plural(tied, 'tied name')} stored once (safetensors.torch.load_model ties them again)`);
  }
  const left = Object.entries(written.left_out).map(([role, n]) => `${formatExact(n)} ${role.replace(/_/g, ' ')}`);
  if (left.length > 0) {
    parts.push(`left out: ${left.join(', ')} tensors`);
  }
  if (written.dropped_count > 0) {
    parts.push(`dropped ${plural(written.dropped_count, 'non-tensor entry')}`);
  }
  return `${parts.join('; ')}.`;
}

/**
 * The two files of a comparison from how the command was called: two files selected in the
 * explorer; one clicked (it is A); or none (A is the checkpoint shown, if any). Missing ones are
 * asked for.
 */
export function compareTargets<T>(clicked: T | undefined, selected: readonly T[] | undefined, active: T | undefined): { a?: T; b?: T } {
  if (selected && selected.length === 2) {
    return { a: selected[0], b: selected[1] };
  }
  const a = clicked ?? active;
  return a === undefined ? {} : { a };
}

/** The default name of a conversion's output: the checkpoint's name, `.safetensors` instead of its extension. */
export function safetensorsName(file: string): string {
  const name = basename(file);
  const stem = name.replace(/\.pth\.tar$/i, '').replace(/\.[^.]+$/, '');
  return `${stem || name}.safetensors`;
}
