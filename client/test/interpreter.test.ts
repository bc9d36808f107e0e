import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  candidateTiers,
  chooseInterpreter,
  expandInterpreterSetting,
  folderHolding,
  isSupportedVersion,
  memoizedProbe,
  parseVersionProbe,
  PROBE_ARGS,
  type ProbeContext,
  type ProbeRunner,
  resolveExecutable,
  runProbe,
} from '../src/interpreter';
import { findPython, makeDecoys, markersIn } from './decoys';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pthscope-interpreter-test-'));
after(() => { fs.rmSync(scratch, { recursive: true, force: true }); });

/** A folder with an executable file `name` in it. */
function binDir(name: string, dir = fs.mkdtempSync(path.join(scratch, 'bin-'))): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  return dir;
}

describe('candidateTiers', () => {
  it('tries the setting, then the Python extension, then PATH', () => {
    assert.deepEqual(candidateTiers({ setting: '/venv/bin/python', pythonExtension: '/other/python', platform: 'linux' }), [
      [{ command: '/venv/bin/python', source: 'setting' }],
      [{ command: '/other/python', source: 'python-extension' }],
      [{ command: 'python3', source: 'path' }, { command: 'python', source: 'path' }],
    ]);
  });

  it('uses python and the py launcher on Windows', () => {
    const tiers = candidateTiers({ setting: '', pythonExtension: undefined, platform: 'win32' });
    assert.deepEqual(tiers.map((tier) => tier.map((c) => c.command)), [['python', 'py']]);
  });
});

describe('expandInterpreterSetting', () => {
  it('expands ~ and ${workspaceFolder}', () => {
    assert.equal(expandInterpreterSetting('~/venv/bin/python', undefined), path.join(os.homedir(), 'venv/bin/python'));
    assert.equal(expandInterpreterSetting(' ${workspaceFolder}/.venv/bin/python ', '/ws'), '/ws/.venv/bin/python');
  });

  it('leaves an empty setting empty', () => {
    assert.equal(expandInterpreterSetting('  ', '/ws'), '');
  });
});

describe('resolveExecutable', () => {
  it('keeps an absolute path and refuses a relative one', () => {
    assert.deepEqual(resolveExecutable('/usr/bin/python3', {}, 'linux'), { path: '/usr/bin/python3' });
    assert.match(JSON.stringify(resolveExecutable('.venv/bin/python', {}, 'linux')), /relative path/);
  });

  it("searches PATH's absolute entries only, never the working directory", () => {
    const good = binDir('python3');
    // "." and "" in PATH mean the working directory: a workspace's python3 there must not be found
    const env = { PATH: ['.', '', 'relative/bin', good].join(':') };
    const calls: string[] = [];
    const found = resolveExecutable('python3', env, 'linux', (file) => { calls.push(file); return fs.existsSync(file); });
    assert.deepEqual(found, { path: path.join(good, 'python3') });
    assert.deepEqual(calls, [path.join(good, 'python3')]);
    assert.deepEqual(resolveExecutable('python3', { PATH: '.:bin' }, 'linux'), { error: 'not found on PATH' });
  });

  it('tries PATHEXT on Windows', () => {
    const seen: string[] = [];
    const found = resolveExecutable('python', { Path: 'C:\\Python312;.', PATHEXT: '.COM;.EXE' }, 'win32', (file) => { seen.push(file); return file.endsWith('.EXE'); });
    assert.deepEqual(found, { path: 'C:\\Python312\\python.EXE' });
    assert.deepEqual(seen, ['C:\\Python312\\python.COM', 'C:\\Python312\\python.EXE']);
  });
});

describe('folderHolding', () => {
  it('finds the folder a file is in, also through a symlink, and nothing outside', () => {
    const workspace = fs.mkdtempSync(path.join(scratch, 'ws-'));
    const venvBin = binDir('python', path.join(workspace, '.venv', 'bin'));
    const link = path.join(scratch, 'innocent-python');
    fs.symlinkSync(path.join(venvBin, 'python'), link);
    assert.equal(folderHolding(path.join(venvBin, 'python'), [workspace]), workspace);
    assert.equal(folderHolding(link, [workspace]), workspace);
    assert.equal(folderHolding(workspace, [workspace]), workspace);
    assert.equal(folderHolding(`${workspace}-sibling/python`, [workspace]), undefined);
    assert.equal(folderHolding('/usr/bin/python3', [workspace]), undefined);
  });
});

describe('parseVersionProbe and isSupportedVersion', () => {
  it('parses version, executable and environment', () => {
    assert.deepEqual(parseVersionProbe('3.11.7\n/usr/bin/python3\n/usr\n'), { major: 3, minor: 11, micro: 7, executable: '/usr/bin/python3', prefix: '/usr' });
  });

  it('rejects output that is not a version', () => {
    assert.equal(parseVersionProbe('Python was not found; run without arguments to install'), undefined);
  });

  it('accepts 3.10 and newer only', () => {
    const version = (major: number, minor: number) => ({ major, minor, micro: 0, executable: '', prefix: '' });
    assert.equal(isSupportedVersion(version(3, 9)), false);
    assert.equal(isSupportedVersion(version(3, 10)), true);
    assert.equal(isSupportedVersion(version(3, 13)), true);
    assert.equal(isSupportedVersion(version(4, 0)), true);
    assert.equal(isSupportedVersion(version(2, 7)), false);
  });
});

describe('chooseInterpreter', () => {
  const workspace = fs.mkdtempSync(path.join(scratch, 'ws-'));
  const workspacePython = path.join(binDir('python', path.join(workspace, '.venv', 'bin')), 'python');
  const userBin = binDir('python3');
  const userPython = path.join(userBin, 'python3');
  const trusted: ProbeContext = { untrustedFolders: [], cwd: scratch, env: { PATH: userBin }, platform: 'linux' };
  const restricted: ProbeContext = { ...trusted, untrustedFolders: [workspace] };

  /** Answers the probe from a table; records what ran, with which arguments and where. */
  const fakeRunner = (answers: Record<string, string>) => {
    const ran: { command: string; args: readonly string[]; cwd: string }[] = [];
    const run: ProbeRunner = (command, args, cwd) => {
      ran.push({ command, args, cwd });
      const answer = answers[command];
      return Promise.resolve(answer === undefined ? { stdout: '', error: `spawn ${command} ENOENT` } : { stdout: answer });
    };
    return { run, ran };
  };

  it('probes with -E -s -S from the given folder, the resolved executable', async () => {
    const { run, ran } = fakeRunner({ [userPython]: `3.12.1\n${userPython}\n/usr` });
    const choice = await chooseInterpreter(candidateTiers({ setting: '', pythonExtension: undefined, platform: 'linux' }), trusted, run);
    assert.equal(choice.ok && choice.executable, userPython);
    assert.deepEqual(ran, [{ command: userPython, args: PROBE_ARGS, cwd: scratch }]);
    assert.deepEqual(PROBE_ARGS.slice(0, 4), ['-E', '-s', '-S', '-c']);
  });

  it('trusted: the setting wins outright, even when it fails', async () => {
    const { run } = fakeRunner({ [userPython]: `3.12.1\n${userPython}\n/usr` });
    const choice = await chooseInterpreter(candidateTiers({ setting: '/missing/python', pythonExtension: undefined, platform: 'linux' }), trusted, run);
    assert.equal(choice.ok, false);
    assert.match(choice.ok ? '' : choice.message, /could not run Python \(tried \/missing\/python\)/);
  });

  it('trusted: a workspace interpreter runs', async () => {
    const { run } = fakeRunner({ [workspacePython]: `3.12.1\n${workspacePython}\n${workspace}/.venv` });
    const choice = await chooseInterpreter(candidateTiers({ setting: workspacePython, pythonExtension: undefined, platform: 'linux' }), trusted, run);
    assert.equal(choice.ok && choice.executable, workspacePython);
  });

  it('Restricted Mode: never runs an interpreter inside the workspace, falls back to PATH', async () => {
    const { run, ran } = fakeRunner({ [workspacePython]: `3.12.1\n${workspacePython}\n/usr`, [userPython]: `3.11.7\n${userPython}\n/usr` });
    const tiers = candidateTiers({ setting: workspacePython, pythonExtension: workspacePython, platform: 'linux' });
    const choice = await chooseInterpreter(tiers, restricted, run);
    assert.equal(choice.ok && choice.executable, userPython);
    assert.equal(choice.ok && choice.candidate.source, 'path');
    assert.deepEqual(ran.map((r) => r.command), [userPython], 'the workspace python must not even be probed');
    assert.equal(choice.refused.length, 2);
    assert.match(choice.refused[0] ?? '', /pthscope\.interpreter setting.*inside the untrusted workspace folder.*Restricted Mode does not run it/);
  });

  it('Restricted Mode: refuses an interpreter whose executable or environment is in the workspace', async () => {
    const { run } = fakeRunner({ [userPython]: `3.11.7\n${userPython}\n${path.join(workspace, '.venv')}` });
    const choice = await chooseInterpreter([[{ command: userPython, source: 'setting' }]], restricted, run);
    assert.equal(choice.ok, false);
    assert.match(choice.refused.join('\n'), /its environment .*\.venv is inside the untrusted workspace/);
    assert.match(choice.ok ? '' : choice.message, /found no Python outside this untrusted workspace/);
    const wrapper = fakeRunner({ [userPython]: `3.11.7\n${workspacePython}\n/usr` });
    const viaWrapper = await chooseInterpreter([[{ command: userPython, source: 'setting' }]], restricted, wrapper.run);
    assert.match(viaWrapper.refused.join('\n'), /its executable .*\.venv\/bin\/python is inside/);
  });

  it('explains a too-old interpreter and how to fix it', async () => {
    const { run } = fakeRunner({ '/opt/py38/bin/python': '3.8.10\n/opt/py38/bin/python\n/opt/py38' });
    const choice = await chooseInterpreter([[{ command: '/opt/py38/bin/python', source: 'setting' }]], trusted, run);
    assert.equal(choice.ok, false);
    assert.match(choice.ok ? '' : choice.message, /needs Python >= 3\.10, but \/opt\/py38\/bin\/python is Python 3\.8\.10/);
    assert.match(choice.ok ? '' : choice.message, /pthscope\.interpreter/);
  });

  it("a remote window: a user setting naming another machine's Python falls back to the next source, saying why", async () => {
    const { run } = fakeRunner({ [userPython]: `3.11.7\n${userPython}\n/usr` });
    const tiers = candidateTiers({ setting: '/Users/me/venv/bin/python', pythonExtension: undefined, platform: 'linux' });
    const choice = await chooseInterpreter(tiers, { ...trusted, tryNextSourceOnFailure: true }, run);
    assert.equal(choice.ok && choice.executable, userPython);
    assert.equal(choice.ok && choice.candidate.source, 'path');
    assert.match(choice.ok ? choice.skipped.join('\n') : '', /\/Users\/me\/venv\/bin\/python \(the pthscope\.interpreter setting\): spawn .* ENOENT/);
    const local = await chooseInterpreter(tiers, trusted, run); // a local window: the setting is what the user wants, or an error
    assert.equal(local.ok, false);
  });

  it('says what it tried when nothing runs', async () => {
    const { run } = fakeRunner({});
    const choice = await chooseInterpreter([[{ command: 'python3', source: 'path' }, { command: 'python', source: 'path' }]], { ...trusted, env: { PATH: '' } }, run);
    assert.equal(choice.ok, false);
    assert.match(choice.ok ? '' : choice.message, /could not run Python \(tried python3, python\)/);
    assert.equal(choice.ok ? 0 : choice.details.length, 2);
  });
});

describe('memoizedProbe', () => {
  it('probes an executable once while it is unchanged, and again after it changed or failed', async () => {
    let calls = 0;
    let version = 'a';
    let fail = false;
    const run: ProbeRunner = () => { calls += 1; return Promise.resolve(fail ? { stdout: '', error: 'boom' } : { stdout: '3.11.7' }); };
    const probe = memoizedProbe(run, () => version);
    await probe('/py', PROBE_ARGS, '/ext');
    await probe('/py', PROBE_ARGS, '/ext');
    assert.equal(calls, 1);
    version = 'b'; // the venv's python was replaced
    await probe('/py', PROBE_ARGS, '/ext');
    assert.equal(calls, 2);
    version = 'c';
    fail = true;
    await probe('/py', PROBE_ARGS, '/ext');
    await new Promise((resolve) => setImmediate(resolve));
    fail = false;
    assert.equal((await probe('/py', PROBE_ARGS, '/ext')).error, undefined);
    assert.equal(calls, 4);
  });
});

describe('memoizedProbe with a store', () => {
  it('answers the next session from the store while the executable is unchanged', async () => {
    const kept = new Map<string, string>();
    const store = { get: (k: string) => kept.get(k), set: (k: string, v: string) => { kept.set(k, v); } };
    let calls = 0;
    const run: ProbeRunner = () => { calls += 1; return Promise.resolve({ stdout: '3.11.7\n/py\n/usr' }); };
    await memoizedProbe(run, () => 'v1', store)('/py', PROBE_ARGS, '/ext');
    await new Promise((resolve) => setImmediate(resolve));
    const nextSession = memoizedProbe(run, () => 'v1', store);
    assert.equal((await nextSession('/py', PROBE_ARGS, '/ext')).stdout, '3.11.7\n/py\n/usr');
    assert.equal(calls, 1);
    await memoizedProbe(run, () => 'v2', store)('/py', PROBE_ARGS, '/ext'); // replaced: probed again
    assert.equal(calls, 2);
  });
});

describe('the real version probe', () => {
  const python = findPython();

  it('imports nothing from its working directory, PYTHONPATH or PYTHONSTARTUP', { skip: !python && 'no python3' }, async () => {
    const decoys = makeDecoys(path.join(scratch, 'probe-decoys'));
    const env = { ...process.env, PYTHONPATH: decoys.workspace, PYTHONSTARTUP: path.join(decoys.workspace, 'startup.py'), PYTHONHOME: '/nonexistent' };
    // the worst case: the client never gives a workspace as cwd, but the probe must be safe even then
    const choice = await chooseInterpreter([[{ command: python ?? '', source: 'setting' }]], { untrustedFolders: [], cwd: decoys.workspace, env, platform: process.platform },
      (command, args, cwd) => runProbe(command, args, cwd));
    assert.equal(choice.ok, true, JSON.stringify(choice));
    assert.deepEqual(markersIn(decoys.markers), []);
  });

  const python2 = findPython('python2.7', '2.7');
  it('names a Python 2 as too old instead of failing on the probe', { skip: !python2 && 'no python2.7' }, async () => {
    const choice = await chooseInterpreter([[{ command: python2 ?? '', source: 'setting' }]], { untrustedFolders: [], cwd: scratch, env: process.env, platform: process.platform });
    assert.equal(choice.ok, false);
    assert.match(choice.ok ? '' : choice.message, /needs Python >= 3\.10, but .* is Python 2\.7\./);
  });
});
