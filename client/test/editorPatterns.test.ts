import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { editorPatterns, matchesEditorPattern } from '../src/editorPatterns';

const manifest: unknown = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', '..', 'package.json'), 'utf8'));

describe('editorPatterns', () => {
  it('reads the default editor\'s patterns from package.json', () => {
    const patterns = editorPatterns(manifest, 'pthscope.checkpoint');
    assert.ok(patterns.includes('*.pth') && patterns.includes('*.safetensors') && patterns.includes('*.pth.tar'));
    assert.ok(!patterns.includes('*.bin')); // an option only: `.bin` is shared with firmware and datasets
    assert.deepEqual(editorPatterns(manifest, 'pthscope.binCheckpoint'), ['*.bin']);
  });

  it('survives a manifest without editors', () => {
    assert.deepEqual(editorPatterns(undefined, 'x'), []);
    assert.deepEqual(editorPatterns({ contributes: { customEditors: [{ viewType: 'x', selector: [{ filenamePattern: 3 }] }] } }, 'x'), []);
  });
});

describe('matchesEditorPattern', () => {
  const patterns = ['*.pth', '*.pth.tar', '*.safetensors'];
  it('matches by ending, ignoring case', () => {
    assert.ok(matchesEditorPattern('model.pth', patterns));
    assert.ok(matchesEditorPattern('MODEL.PTH', patterns));
    assert.ok(matchesEditorPattern('legacy.pth.tar', patterns));
    assert.ok(matchesEditorPattern('x.safetensors', patterns));
  });
  it('does not match other files', () => {
    assert.ok(!matchesEditorPattern('model.pth.bak', patterns));
    assert.ok(!matchesEditorPattern('train.py', patterns));
    assert.ok(!matchesEditorPattern('model.tar', patterns));
    assert.ok(!matchesEditorPattern('anything', ['model.*']));
  });
});
