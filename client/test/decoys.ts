/**
 * A folder full of decoy modules for the launch tests: each writes a marker file when imported
 * (or run), so a test can tell whether anything from the "workspace" ran.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Module files whose import would mean the workspace got onto sys.path. */
export const DECOY_MODULES = [
  'json.py', 'argparse.py', 'typing.py', 'asyncio/__init__.py', 'pygls/__init__.py', 'lsprotocol/__init__.py',
  'cattrs/__init__.py', 'attrs/__init__.py', 'pthscope/__init__.py', 'pthscope/__main__.py', 'sitecustomize.py',
  'usercustomize.py', 'startup.py',
];

export interface Decoys {
  workspace: string;
  markers: string;
}

export function makeDecoys(root: string): Decoys {
  const workspace = path.join(root, 'workspace');
  const markers = path.join(root, 'markers');
  fs.mkdirSync(markers, { recursive: true });
  for (const module of DECOY_MODULES) {
    const file = path.join(workspace, module);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const marker = path.join(markers, module.replace(/[/\\]/g, '.'));
    fs.writeFileSync(file, `open(${JSON.stringify(marker)}, 'w').close()\n`);
  }
  return { workspace, markers };
}

export function markersIn(markers: string): string[] {
  return fs.readdirSync(markers).sort();
}

export const REPO = path.resolve(__dirname, '..', '..', '..', '..');

/** The repository's venv python (pygls, pthscope), when scripts/setup.sh has made it. */
export function venvPython(): string | undefined {
  const python = path.join(REPO, '.venv', 'bin', 'python');
  return fs.existsSync(python) ? python : undefined;
}

/**
 * An interpreter: the first `name` on PATH, else in pyenv's versions starting with `pyenvVersion`.
 */
export function findPython(name = 'python3', pyenvVersion?: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d) && !d.includes('shims'))) {
    if (fs.existsSync(path.join(dir, name))) {
      return path.join(dir, name);
    }
  }
  const versions = path.join(process.env.PYENV_ROOT ?? path.join(os.homedir(), '.pyenv'), 'versions');
  if (pyenvVersion && fs.existsSync(versions)) {
    for (const version of fs.readdirSync(versions).filter((v) => v.startsWith(pyenvVersion)).sort()) {
      const python = path.join(versions, version, 'bin', name);
      if (fs.existsSync(python)) {
        return python;
      }
    }
  }
  return undefined;
}
