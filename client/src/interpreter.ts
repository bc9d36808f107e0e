/**
 * Which Python runs the server, and whether it is new enough and allowed to run. Pure logic plus
 * one child process: no `vscode` import, so node's test runner can check it directly. Where the
 * candidates come from (settings, the Python extension) is the caller's business.
 *
 * In Restricted Mode no executable inside a workspace folder runs (not even for the version
 * probe): such a candidate counts as unset and the next source is tried. In a remote window the
 * caller may ask for the next source also when the setting's interpreter does not run there.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const MIN_PYTHON: readonly [number, number] = [3, 10];

export type InterpreterSource = 'setting' | 'python-extension' | 'path';

export interface InterpreterCandidate {
  command: string;
  source: InterpreterSource;
}

export interface InterpreterSources {
  /** `pthscope.interpreter`, already expanded; empty when unset. */
  setting: string;
  /** The Python extension's active environment executable, when it is installed and has one. */
  pythonExtension: string | undefined;
  platform: NodeJS.Platform;
}

const SOURCE_NAMES: Record<InterpreterSource, string> = {
  setting: 'the pthscope.interpreter setting',
  'python-extension': "the Python extension's environment",
  path: 'PATH',
};

export function describeSource(source: InterpreterSource): string {
  return SOURCE_NAMES[source];
}

/**
 * The interpreters to try, by source, best source first: the setting; else the Python
 * extension's; else `python3`/`python` on PATH. Only the first source is used, unless Restricted
 * Mode refuses all of its candidates.
 */
export function candidateTiers(sources: InterpreterSources): InterpreterCandidate[][] {
  const tiers: InterpreterCandidate[][] = [];
  if (sources.setting) {
    tiers.push([{ command: sources.setting, source: 'setting' }]);
  }
  if (sources.pythonExtension) {
    tiers.push([{ command: sources.pythonExtension, source: 'python-extension' }]);
  }
  const names = sources.platform === 'win32' ? ['python', 'py'] : ['python3', 'python'];
  tiers.push(names.map((command) => ({ command, source: 'path' })));
  return tiers;
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

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The absolute path `command` names: itself when absolute, else the first match on PATH's
 * absolute entries (never the working directory, which a relative PATH entry or Windows'
 * own search would add). A relative path is refused: relative to what?
 */
export function resolveExecutable(
  command: string,
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform,
  isExecutable: (file: string) => boolean = isExecutableFile,
): { path: string } | { error: string } {
  const paths = platform === 'win32' ? path.win32 : path.posix;
  if (paths.isAbsolute(command)) {
    return { path: paths.normalize(command) };
  }
  if (command.includes('/') || (platform === 'win32' && command.includes('\\'))) {
    return { error: 'a relative path; use an absolute one (`~` and ${workspaceFolder} are expanded)' };
  }
  const pathVariable = (platform === 'win32' ? env.Path ?? env.PATH : env.PATH) ?? '';
  const extensions = platform === 'win32' && !paths.extname(command) ? (env.PATHEXT ?? '.COM;.EXE').split(';').filter(Boolean) : [''];
  for (const dir of pathVariable.split(platform === 'win32' ? ';' : ':')) {
    if (!paths.isAbsolute(dir)) {
      continue;
    }
    for (const extension of extensions) {
      const file = paths.join(dir, command + extension);
      if (isExecutable(file)) {
        return { path: file };
      }
    }
  }
  return { error: 'not found on PATH' };
}

function realPath(file: string): string {
  try {
    return fs.realpathSync.native(file);
  } catch {
    return file;
  }
}

/** The folder among `folders` that holds `file` (as given or with symlinks resolved), if any. */
export function folderHolding(file: string, folders: readonly string[], platform: NodeJS.Platform = process.platform): string | undefined {
  const paths = platform === 'win32' ? path.win32 : path.posix;
  const fold = (p: string) => (platform === 'win32' || platform === 'darwin' ? p.toLowerCase() : p);
  const inside = (child: string, parent: string) => {
    const relative = paths.relative(fold(parent), fold(child));
    return relative === '' || (!relative.startsWith('..') && !paths.isAbsolute(relative));
  };
  const forms = [...new Set([paths.resolve(file), realPath(file)])];
  return folders.find((folder) => [...new Set([folder, realPath(folder)])].some((f) => forms.some((form) => inside(form, f))));
}

export interface PythonVersion {
  major: number;
  minor: number;
  micro: number;
  executable: string;
  /** sys.prefix: the environment (a venv's folder) whose packages the server would import. */
  prefix: string;
}

/** Runs with `-E -s -S` (no PYTHON* variables, no site: nothing is imported but `sys`), in Python 2 too. */
export const VERSION_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable); print(sys.prefix)";
export const PROBE_ARGS: readonly string[] = ['-E', '-s', '-S', '-c', VERSION_PROBE];

/** Parses the output of VERSION_PROBE ("3.11.7\n/usr/bin/python3\n/usr"). */
export function parseVersionProbe(stdout: string): PythonVersion | undefined {
  const [versionLine = '', executable = '', prefix = ''] = stdout.trim().split(/\r?\n/);
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(versionLine.trim());
  if (!match) {
    return undefined;
  }
  const [, major = '0', minor = '0', micro = '0'] = match;
  return { major: Number(major), minor: Number(minor), micro: Number(micro), executable: executable.trim(), prefix: prefix.trim() };
}

export function isSupportedVersion(version: PythonVersion): boolean {
  const [major, minor] = MIN_PYTHON;
  return version.major > major || (version.major === major && version.minor >= minor);
}

export function formatVersion(version: PythonVersion): string {
  return `${version.major}.${version.minor}.${version.micro}`;
}

export type ProbeRunner = (command: string, args: readonly string[], cwd: string) => Promise<{ stdout: string; error?: string }>;

export const runProbe: ProbeRunner = (command, args, cwd) =>
  new Promise((resolve) => {
    execFile(command, [...args], { timeout: 15000, cwd }, (error, stdout, stderr) => {
      resolve(error ? { stdout, error: `${error.message}${stderr ? `\n${stderr}` : ''}` } : { stdout });
    });
  });

/** Where probe answers outlive the session (the extension's global state), keyed by executable and its stamp. */
export interface ProbeStore {
  get(key: string): string | undefined;
  set(key: string, stdout: string): void;
}

/**
 * `run`, asked once per executable while that file is unchanged (same size and mtime): a
 * restart, a second window, the next session (with `store`) do not probe again. Failures are
 * not kept.
 */
export function memoizedProbe(run: ProbeRunner, stat: (file: string) => string | undefined = statKey, store?: ProbeStore): ProbeRunner {
  const known = new Map<string, Promise<{ stdout: string; error?: string }>>();
  return (command, args, cwd) => {
    const version = stat(command);
    if (version === undefined) {
      return run(command, args, cwd);
    }
    const key = JSON.stringify([command, version, args, cwd]);
    let answer = known.get(key);
    const stored = answer ? undefined : store?.get(key);
    if (stored !== undefined) {
      answer = Promise.resolve({ stdout: stored });
      known.set(key, answer);
    } else if (!answer) {
      answer = run(command, args, cwd);
      known.set(key, answer);
      void answer.then((result) => {
        if (result.error) {
          known.delete(key);
        } else {
          store?.set(key, result.stdout);
        }
      });
    }
    return answer;
  };
}

function statKey(file: string): string | undefined {
  try {
    const st = fs.statSync(file);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

export interface ProbeContext {
  /** Restricted Mode: the workspace folders, none of whose executables or environments may run. Empty when trusted. */
  untrustedFolders: readonly string[];
  /** The probe's working directory: the extension's folder, never a workspace. */
  cwd: string;
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  /** Try the next source when every candidate of one fails, not only when refused (a remote window's user setting). */
  tryNextSourceOnFailure?: boolean;
}

export type InterpreterChoice =
  | { ok: true; candidate: InterpreterCandidate; executable: string; version: PythonVersion; refused: string[]; skipped: string[] }
  | { ok: false; message: string; details: string[]; refused: string[] };

type Attempt =
  | { kind: 'ok'; executable: string; version: PythonVersion }
  | { kind: 'refused' | 'failed'; detail: string }
  | { kind: 'too-old'; detail: string; version: PythonVersion };

async function tryCandidate(candidate: InterpreterCandidate, context: ProbeContext, run: ProbeRunner): Promise<Attempt> {
  const label = `${candidate.command} (${describeSource(candidate.source)})`;
  const resolved = resolveExecutable(candidate.command, context.env, context.platform);
  if ('error' in resolved) {
    return { kind: 'failed', detail: `${label}: ${resolved.error}` };
  }
  const refuse = (what: string, folder: string): Attempt => ({
    kind: 'refused',
    detail: `${label}: ${what} is inside the untrusted workspace folder ${folder}; Restricted Mode does not run it.`,
  });
  const before = folderHolding(resolved.path, context.untrustedFolders, context.platform);
  if (before) {
    return refuse(resolved.path, before);
  }
  const result = await run(resolved.path, PROBE_ARGS, context.cwd);
  const version = result.error ? undefined : parseVersionProbe(result.stdout);
  if (!version) {
    return { kind: 'failed', detail: `${label}: ${result.error ?? `unexpected output ${JSON.stringify(result.stdout)}`}` };
  }
  for (const [what, file] of [['its executable', version.executable], ['its environment', version.prefix]] as const) {
    const folder = file ? folderHolding(file, context.untrustedFolders, context.platform) : undefined;
    if (folder) {
      return refuse(`${what} ${file}`, folder);
    }
  }
  if (!isSupportedVersion(version)) {
    return { kind: 'too-old', version, detail: `${label}: Python ${formatVersion(version)} is older than ${MIN_PYTHON.join('.')}` };
  }
  return { kind: 'ok', executable: resolved.path, version };
}

/**
 * Tries the candidates, source by source, and returns the first that runs, is allowed and is
 * >= MIN_PYTHON, or a message that says what was tried and how to fix it. The next source is
 * tried only when Restricted Mode refused every candidate of the current one, or, with
 * `tryNextSourceOnFailure`, when none of them ran; `skipped` then says what did not.
 */
export async function chooseInterpreter(
  tiers: InterpreterCandidate[][],
  context: ProbeContext,
  run: ProbeRunner = runProbe,
): Promise<InterpreterChoice> {
  const details: string[] = [];
  const refused: string[] = [];
  const tooOld: string[] = [];
  const tried: string[] = [];
  for (const tier of tiers) {
    let allRefused = true;
    for (const candidate of tier) {
      tried.push(candidate.command);
      const attempt = await tryCandidate(candidate, context, run);
      if (attempt.kind === 'ok') {
        return { ok: true, candidate, executable: attempt.executable, version: attempt.version, refused, skipped: details };
      }
      (attempt.kind === 'refused' ? refused : details).push(attempt.detail);
      if (attempt.kind === 'too-old') {
        tooOld.push(`${candidate.command} is Python ${formatVersion(attempt.version)}`);
      }
      allRefused &&= attempt.kind === 'refused';
    }
    if (!allRefused && !context.tryNextSourceOnFailure) {
      break;
    }
  }
  const minimum = MIN_PYTHON.join('.');
  const what = tooOld.length > 0
    ? `pthscope needs Python >= ${minimum}, but ${tooOld.join(', ')}.`
    : details.length === 0
      ? 'pthscope found no Python outside this untrusted workspace.'
      : `pthscope could not run Python (tried ${tried.join(', ')}).`;
  return {
    ok: false,
    message: `${what} Set "pthscope.interpreter" in your user settings to a Python >= ${minimum} executable, or select one with the Python extension.`,
    details,
    refused,
  };
}
