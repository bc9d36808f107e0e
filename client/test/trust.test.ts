import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { restrictedModeNote } from '../src/trust';

describe('restrictedModeNote', () => {
  const version = { major: 3, minor: 11, micro: 7, executable: '/usr/bin/python3', prefix: '/usr' };

  it('names the Python that runs, where it came from, what tensor values use, and how to trust', () => {
    const note = restrictedModeNote({ executable: '/usr/bin/python3', version, source: 'path' }, ['/ws/.venv/bin/python (the pthscope.interpreter setting): …']);
    assert.match(note.text, /^Restricted Mode: this workspace cannot choose pthscope's Python/);
    assert.match(note.text, /runs \/usr\/bin\/python3 \(Python 3\.11\.7, from PATH\)/);
    assert.match(note.text, /tensor values use the torch or numpy installed there/);
    assert.match(note.text, /Trust the workspace/);
    assert.deepEqual(note.details, ['/ws/.venv/bin/python (the pthscope.interpreter setting): …']);
  });

  it('says where to look when no Python could start', () => {
    assert.match(restrictedModeNote(undefined, []).text, /No Python outside the workspace could be started; see "pthscope: Show Log"/);
  });
});
