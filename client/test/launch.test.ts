import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { LAUNCHER, serverCodeDir, serverLaunch, type ServerLaunch, WORKSPACE_FOLDERS_VARIABLE } from '../src/launch';
import { makeDecoys, markersIn, REPO, venvPython } from './decoys';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pthscope-launch-test-'));
after(() => { fs.rmSync(scratch, { recursive: true, force: true }); });

describe('serverLaunch', () => {
  it('runs the launcher script isolated, from the code folder, never -m from a workspace', () => {
    const launch = serverLaunch('/usr/bin/python3', '/ext/bundled', { PATH: '/usr/bin', PYTHONPATH: '/opt/torch' }, ['/ws/a', '/ws/b']);
    assert.deepEqual(launch, {
      command: '/usr/bin/python3',
      args: ['-I', '-S', '-X', 'utf8', '/ext/bundled/pthscope_launch.py', 'pthscope', 'lsp'],
      cwd: '/ext/bundled',
      // the user's PYTHONPATH is passed on untouched: the launcher appends it, last
      env: { PATH: '/usr/bin', PYTHONPATH: '/opt/torch', [WORKSPACE_FOLDERS_VARIABLE]: `/ws/a${path.delimiter}/ws/b` },
    });
  });

  it("uses the packaged bundled/ folder when it has the launcher, else the repository's server/", () => {
    assert.equal(serverCodeDir('/ext', (file) => file === path.join('/ext', 'bundled', LAUNCHER)), path.join('/ext', 'bundled'));
    assert.equal(serverCodeDir('/ext', () => false), path.join('/ext', 'server'));
    assert.ok(fs.existsSync(path.join(serverCodeDir(REPO), LAUNCHER)), 'the repository ships the launcher');
  });
});

/** Sends `initialize` over stdio the way the language client does and returns the server's name. */
function initialize(launch: ServerLaunch): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(launch.command, launch.args, { cwd: launch.cwd, env: launch.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = Buffer.alloc(0);
    let stderr = '';
    const timer = setTimeout(() => { child.kill(); reject(new Error(`no answer to initialize; stderr:\n${stderr}`)); }, 30_000);
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.stdout.on('data', (chunk: Buffer) => {
      stdout = Buffer.concat([stdout, chunk]);
      // frames: `Content-Length: N\r\n\r\n{...}`; log messages may come before the answer
      for (;;) {
        const headerEnd = stdout.indexOf('\r\n\r\n');
        const length = /Content-Length: (\d+)/.exec(stdout.subarray(0, Math.max(headerEnd, 0)).toString())?.[1];
        if (headerEnd < 0 || length === undefined || stdout.length < headerEnd + 4 + Number(length)) {
          return;
        }
        const body = stdout.subarray(headerEnd + 4, headerEnd + 4 + Number(length)).toString();
        stdout = stdout.subarray(headerEnd + 4 + Number(length));
        const message = JSON.parse(body) as { id?: number; result?: { serverInfo?: { name?: string } } };
        if (message.id === 1) {
          clearTimeout(timer);
          child.kill();
          resolve(message.result?.serverInfo?.name ?? `no serverInfo in ${body}`);
          return;
        }
      }
    });
    child.on('error', reject);
    const message = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { processId: null, rootUri: null, capabilities: {} } });
    child.stdin.write(`Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`);
  });
}

describe('the real server, launched as the client launches it', () => {
  const python = venvPython();

  it('answers initialize; imports nothing from the workspace, the user PYTHONPATH shadows nothing', { skip: !python && 'no .venv (scripts/setup.sh)' }, async () => {
    const workspace = makeDecoys(path.join(scratch, 'workspace-decoys'));
    const userLibs = makeDecoys(path.join(scratch, 'user-pythonpath-decoys'));
    // PYTHONPATH names the workspace, a folder of the user's and a relative entry: none may shadow
    // the standard library or the server's code (the user's folder may only add modules)
    const env = {
      ...process.env,
      PYTHONPATH: [workspace.workspace, userLibs.workspace, '.'].join(path.delimiter),
      PYTHONSTARTUP: path.join(workspace.workspace, 'startup.py'),
    };
    const launch = serverLaunch(python ?? '', serverCodeDir(REPO), env, [workspace.workspace]);
    assert.equal(await initialize(launch), 'pthscope');
    assert.deepEqual(markersIn(workspace.markers), []);
    assert.deepEqual(markersIn(userLibs.markers), []);
  });
});
