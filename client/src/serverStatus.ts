/**
 * The server's state as the status bar shows it, in words. Pure (no `vscode` import), so node's
 * test runner checks the text.
 */
import { describeSource, formatVersion } from './interpreter';
import type { EnvironmentResult } from './protocol';
import type { RunningInterpreter } from './trust';

export type ServerStatus =
  | { state: 'starting' }
  | { state: 'running'; running: RunningInterpreter; environment: EnvironmentResult | undefined }
  | { state: 'stopped'; reason: string };

export interface StatusText {
  text: string;
  tooltip: string;
  error: boolean;
}

export function statusText(status: ServerStatus): StatusText {
  if (status.state === 'starting') {
    return { text: '$(loading~spin) pthscope', tooltip: 'pthscope: starting the server…', error: false };
  }
  if (status.state === 'stopped') {
    return { text: '$(error) pthscope: no server', tooltip: `The pthscope server is not running: ${status.reason}`, error: true };
  }
  const { running, environment } = status;
  const version = formatVersion(running.version);
  const short = `${running.version.major}.${running.version.minor}`;
  const values = environment === undefined
    ? undefined
    : environment.torch ? `torch ${environment.torch}` : environment.numpy ? `numpy ${environment.numpy}, no torch` : 'no torch';
  const lines = [
    `pthscope server: ${running.executable} (Python ${version}, from ${describeSource(running.source)})`,
    `environment: ${running.version.prefix}`,
  ];
  if (environment) {
    lines.push(environment.torch
      ? `tensor values: torch ${environment.torch}`
      : environment.numpy
        ? `tensor values: numpy ${environment.numpy} (no torch: bfloat16 and float8 tensors have no statistics)`
        : 'tensor values: neither torch nor numpy is installed in this Python, so the page shows no statistics');
  }
  lines.push('', 'Click to choose another Python, see the log or restart.');
  return { text: `$(server-process) Python ${short}${values ? ` · ${values}` : ''}`, tooltip: lines.join('\n'), error: false };
}

