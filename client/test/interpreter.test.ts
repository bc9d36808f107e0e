import assert from 'node:assert/strict';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  chooseInterpreter,
  expandInterpreterSetting,
  interpreterCandidates,
  isSupportedVersion,
  parseVersionProbe,
  type ProbeRunner,
  serverPythonPath,
} from '../src/interpreter';

describe('interpreterCandidates', () => {
  it('uses only the setting when it is set', () => {
    assert.deepEqual(interpreterCandidates({ setting: '/venv/bin/python', pythonExtension: '/other/python', platform: 'linux' }), [
      { command: '/venv/bin/python', source: 'setting' },
    ]);
  });

  it("uses the Python extension's environment when there is no setting", () => {
    assert.deepEqual(interpreterCandidates({ setting: '', pythonExtension: '/conda/bin/python', platform: 'linux' }), [
      { command: '/conda/bin/python', source: 'python-extension' },
    ]);
  });

  it('falls back to python3 then python on PATH', () => {
    const commands = interpreterCandidates({ setting: '', pythonExtension: undefined, platform: 'linux' }).map((c) => c.command);
    assert.deepEqual(commands, ['python3', 'python']);
  });

  it('uses python and the py launcher on Windows', () => {
    const commands = interpreterCandidates({ setting: '', pythonExtension: undefined, platform: 'win32' }).map((c) => c.command);
    assert.deepEqual(commands, ['python', 'py']);
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

describe('parseVersionProbe and isSupportedVersion', () => {
  it('parses version and executable', () => {
    assert.deepEqual(parseVersionProbe('3.11.7\n/usr/bin/python3\n'), { major: 3, minor: 11, micro: 7, executable: '/usr/bin/python3' });
  });

  it('rejects output that is not a version', () => {
    assert.equal(parseVersionProbe('Python was not found; run without arguments to install'), undefined);
  });

  it('accepts 3.10 and newer only', () => {
    const version = (major: number, minor: number) => ({ major, minor, micro: 0, executable: '' });
    assert.equal(isSupportedVersion(version(3, 9)), false);
    assert.equal(isSupportedVersion(version(3, 10)), true);
    assert.equal(isSupportedVersion(version(3, 13)), true);
    assert.equal(isSupportedVersion(version(4, 0)), true);
    assert.equal(isSupportedVersion(version(2, 7)), false);
  });
});

describe('chooseInterpreter', () => {
  const fakeRunner = (answers: Record<string, string | Error>): ProbeRunner => (command) => {
    const answer = answers[command];
    return Promise.resolve(answer instanceof Error || answer === undefined
      ? { stdout: '', error: answer?.message ?? `spawn ${command} ENOENT` }
      : { stdout: answer });
  };

  it('skips a missing interpreter and takes the next', async () => {
    const choice = await chooseInterpreter(
      [{ command: 'python3', source: 'path' }, { command: 'python', source: 'path' }],
      fakeRunner({ python: '3.12.1\n/usr/bin/python' }),
    );
    assert.equal(choice.ok, true);
    assert.equal(choice.ok && choice.candidate.command, 'python');
  });

  it('explains a too-old interpreter and how to fix it', async () => {
    const choice = await chooseInterpreter([{ command: '/opt/py38/bin/python', source: 'setting' }], fakeRunner({ '/opt/py38/bin/python': '3.8.10\n/opt/py38/bin/python' }));
    assert.equal(choice.ok, false);
    assert.match(choice.ok ? '' : choice.message, /needs Python >= 3\.10, but \/opt\/py38\/bin\/python is Python 3\.8\.10/);
    assert.match(choice.ok ? '' : choice.message, /pthscope\.interpreter/);
  });

  it('says what it tried when nothing runs', async () => {
    const choice = await chooseInterpreter([{ command: 'python3', source: 'path' }, { command: 'python', source: 'path' }], fakeRunner({}));
    assert.equal(choice.ok, false);
    assert.match(choice.ok ? '' : choice.message, /could not run Python \(tried python3, python\)/);
    assert.equal(choice.ok ? 0 : choice.details.length, 2);
  });
});

describe('serverPythonPath', () => {
  it('puts the bundled folders in front of the user PYTHONPATH', () => {
    assert.equal(serverPythonPath(['/ext/bundled/libs', '/ext/bundled'], '/user/lib', ':'), '/ext/bundled/libs:/ext/bundled:/user/lib');
    assert.equal(serverPythonPath(['/ext/bundled/libs', '/ext/bundled'], undefined, ':'), '/ext/bundled/libs:/ext/bundled');
  });
});
