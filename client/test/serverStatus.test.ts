import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFirstPage } from '../src/checkpointPage';
import { statusText } from '../src/serverStatus';

const running = { executable: '/venv/bin/python', version: { major: 3, minor: 11, micro: 7, executable: '/venv/bin/python', prefix: '/venv' }, source: 'setting' as const };

describe('statusText', () => {
  it('names the Python and whether it has torch', () => {
    const shown = statusText({ state: 'running', running, environment: { python: '3.11.7', executable: '/venv/bin/python', prefix: '/venv', torch: '2.13.0', numpy: '2.1.0' } });
    assert.equal(shown.text, '$(server-process) Python 3.11 · torch 2.13.0');
    assert.match(shown.tooltip, /^pthscope server: \/venv\/bin\/python \(Python 3\.11\.7, from the pthscope\.interpreter setting\)/);
    assert.match(shown.tooltip, /tensor values: torch 2\.13\.0/);
    assert.equal(shown.error, false);
  });

  it('says when there is no torch, and what that costs', () => {
    const numpyOnly = statusText({ state: 'running', running, environment: { python: '3.11.7', executable: '/venv/bin/python', prefix: '/venv', torch: null, numpy: '2.1.0' } });
    assert.equal(numpyOnly.text, '$(server-process) Python 3.11 · numpy 2.1.0, no torch');
    assert.match(numpyOnly.tooltip, /no torch: bfloat16 and float8 tensors have no statistics/);
    const neither = statusText({ state: 'running', running, environment: { python: '3.11.7', executable: '/venv/bin/python', prefix: '/venv', torch: null, numpy: null } });
    assert.equal(neither.text, '$(server-process) Python 3.11 · no torch');
    assert.match(neither.tooltip, /neither torch nor numpy/);
  });

  it('shows a server that is not running as an error, with the reason', () => {
    const shown = statusText({ state: 'stopped', reason: 'pthscope could not run Python (tried /missing).' });
    assert.equal(shown.error, true);
    assert.match(shown.tooltip, /could not run Python/);
  });
});

describe('isFirstPage', () => {
  it("is the table's opening request only: no offset, filter, order or row asked", () => {
    assert.equal(isFirstPage({ file: '/f', offset: 0, limit: 500, filter: '', sort: 'index', descending: false }, 500), true);
    assert.equal(isFirstPage({ file: '/f', offset: 500, limit: 500 }, 500), false);
    assert.equal(isFirstPage({ file: '/f', filter: 'fc' }, 500), false);
    assert.equal(isFirstPage({ file: '/f', sort: 'numel' }, 500), false);
    assert.equal(isFirstPage({ file: '/f', limit: 0, rowOf: ['fc.weight'] }, 500), false);
  });
});
