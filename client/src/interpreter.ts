/**
 * Which Python runs the server, and whether it is new enough. Pure logic plus one child
 * process: no `vscode` import, so node's test runner can check it directly. Where the
 * candidates come from (settings, the Python extension) is the caller's business.
 */
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

export const MIN_PYTHON: readonly [number, number] = [3, 10];

export type InterpreterSource = 'setting' | 'python-extension' | 'path';

export interface InterpreterCandidate {
  command: string;
  source: InterpreterSource;
}

export interface InterpreterSources {
  /** `pthscope.interpreter`, already trimmed; empty when unset. */
  setting: string;
  /** The Python extension's active environment executable, when it is installed and has one. */
  pythonExtension: string | undefined;
  platform: NodeJS.Platform;
}

/** The interpreters to try, best first: the setting wins outright; else the Python extension's; else PATH. */
export function interpreterCandidates(sources: InterpreterSources): InterpreterCandidate[] {
  if (sources.setting) {
    return [{ command: sources.setting, source: 'setting' }];
  }
  if (sources.pythonExtension) {
    return [{ command: sources.pythonExtension, source: 'python-extension' }];
  }
  const names = sources.platform === 'win32' ? ['python', 'py'] : ['python3', 'python'];
  return names.map((command) => ({ command, source: 'path' }));
}

/** Expands `~` and `${workspaceFolder}` in an interpreter setting. */
export function expandInterpreterSetting(value: string, workspaceFolder: string | undefined): string {
  let expanded = value.trim();
  if (expanded === '~' || expanded.startsWith('~/')) {
    expanded = path.join(os.homedir(), expanded.slice(1));
  }
  if (workspaceFolder !== undefined) {
    expanded = expanded.split('${workspaceFolder}').join(workspaceFolder);
  }
  return expanded;
}

export interface PythonVersion {
  major: number;
  minor: number;
  micro: number;
  executable: string;
}

export const VERSION_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)";

/** Parses the output of VERSION_PROBE ("3.11.7\n/usr/bin/python3"). */
export function parseVersionProbe(stdout: string): PythonVersion | undefined {
  const [versionLine = '', executable = ''] = stdout.trim().split(/\r?\n/);
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(versionLine.trim());
  if (!match) {
    return undefined;
  }
  const [, major = '0', minor = '0', micro = '0'] = match;
  return { major: Number(major), minor: Number(minor), micro: Number(micro), executable: executable.trim() };
}

export function isSupportedVersion(version: PythonVersion): boolean {
  const [major, minor] = MIN_PYTHON;
  return version.major > major || (version.major === major && version.minor >= minor);
}

export function formatVersion(version: PythonVersion): string {
  return `${version.major}.${version.minor}.${version.micro}`;
}

export type ProbeRunner = (command: string, args: string[]) => Promise<{ stdout: string; error?: string }>;

export const runProbe: ProbeRunner = (command, args) =>
  new Promise((resolve) => {
    execFile(command, args, { timeout: 15000 }, (error, stdout, stderr) => {
      resolve(error ? { stdout, error: `${error.message}${stderr ? `\n${stderr}` : ''}` } : { stdout });
    });
  });

export type InterpreterChoice =
  | { ok: true; candidate: InterpreterCandidate; version: PythonVersion }
  | { ok: false; message: string; details: string[] };

/**
 * Tries the candidates in order and returns the first that runs and is >= MIN_PYTHON, or a
 * message that says what was tried and how to fix it.
 */
export async function chooseInterpreter(
  candidates: InterpreterCandidate[],
  run: ProbeRunner = runProbe,
): Promise<InterpreterChoice> {
  const details: string[] = [];
  const tooOld: string[] = [];
  for (const candidate of candidates) {
    const result = await run(candidate.command, ['-c', VERSION_PROBE]);
    const version = result.error ? undefined : parseVersionProbe(result.stdout);
    if (!version) {
      details.push(`${candidate.command} (${candidate.source}): ${result.error ?? `unexpected output ${JSON.stringify(result.stdout)}`}`);
      continue;
    }
    if (isSupportedVersion(version)) {
      return { ok: true, candidate, version };
    }
    tooOld.push(`${candidate.command} is Python ${formatVersion(version)}`);
    details.push(`${candidate.command} (${candidate.source}): Python ${formatVersion(version)} is older than ${MIN_PYTHON.join('.')}`);
  }
  const minimum = MIN_PYTHON.join('.');
  const what = tooOld.length > 0
    ? `pthscope needs Python >= ${minimum}, but ${tooOld.join(', ')}.`
    : `pthscope could not run Python (tried ${candidates.map((c) => c.command).join(', ')}).`;
  return {
    ok: false,
    message: `${what} Set "pthscope.interpreter" to a Python >= ${minimum} executable, or select one with the Python extension.`,
    details,
  };
}

/** PYTHONPATH for the server: the bundled libs and package in front of whatever the user had. */
export function serverPythonPath(bundledDirs: string[], existing: string | undefined, delimiter = path.delimiter): string {
  return [...bundledDirs, ...(existing ? [existing] : [])].join(delimiter);
}
