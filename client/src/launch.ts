/**
 * The server's command line, working directory and environment. Pure (no `vscode` import), so
 * node's test runner checks exactly what the client runs.
 *
 *   <python> -I -S -X utf8 <code dir>/pthscope_launch.py pthscope lsp      (cwd: <code dir>)
 *
 * `-I` keeps the working directory, the script's folder, every PYTHON* variable and the user
 * site off the server's path; `-S` leaves `site` to the launcher (server/pthscope_launch.py,
 * shipped in bundled/), which puts the bundled libraries and pthscope first, the interpreter's
 * own entries next and the user's PYTHONPATH last, drops anything inside
 * PTHSCOPE_WORKSPACE_FOLDERS, and only then imports `sitecustomize`. The server starts its parse
 * worker the same way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const LAUNCHER = 'pthscope_launch.py';
/** Tells the launcher (in the server and its worker) which folders must not be on sys.path. */
export const WORKSPACE_FOLDERS_VARIABLE = 'PTHSCOPE_WORKSPACE_FOLDERS';

/**
 * The folder that holds the launcher and the server code: a packaged extension ships `bundled/`
 * (launcher, pthscope, libs/); a development checkout runs the repository's `server/` against
 * the interpreter's own pygls.
 */
export function serverCodeDir(extensionPath: string, exists: (file: string) => boolean = fs.existsSync): string {
  const bundled = path.join(extensionPath, 'bundled');
  return exists(path.join(bundled, LAUNCHER)) ? bundled : path.join(extensionPath, 'server');
}

export interface ServerLaunch {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export function serverLaunch(python: string, codeDir: string, hostEnv: NodeJS.ProcessEnv, workspaceFolders: readonly string[]): ServerLaunch {
  return {
    command: python,
    args: ['-I', '-S', '-X', 'utf8', path.join(codeDir, LAUNCHER), 'pthscope', 'lsp'],
    cwd: codeDir,
    env: { ...hostEnv, [WORKSPACE_FOLDERS_VARIABLE]: workspaceFolders.join(path.delimiter) },
  };
}
