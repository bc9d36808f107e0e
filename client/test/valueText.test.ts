import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConvertSummary, NodeSummary, ScanResult, ScanTensor } from '../src/protocol';
import { nodeLook, nodeTooltipMarkdown } from '../src/treeModel';
import { compareTargets, convertMessage, safetensorsName, scanMessage } from '../src/valueText';

function bad(key: string, severity: 'error' | 'warning', kind: ScanTensor['findings'][number]['kind']): ScanTensor {
  return {
    key, path: [key], aliases: [], dtype: 'float32', shape: [4], role: 'parameter', severity,
    findings: [{ kind, severity, message: `${kind} here` }],
    stats: { min: 0, max: 1, mean: 0.5, std: 0.1, abs_max: 1, zeros: 0, nan: 0, posinf: 0, neginf: 0 },
  };
}

function scan(overrides: Partial<ScanResult> = {}): ScanResult {
  return {
    file: '/w/run/model.pt', complete: true, total: 10, scanned: 10, elements: 1000, bytes: 4000, seconds: 0.1,
    counts: { nan: 0, inf: 0, all_zero: 0, extreme: 0, fp16_overflow: 0 }, bad: [], unreadable: [],
    thresholds: { extreme_ratio: 1e4, float16_max: 65504 }, ...overrides,
  };
}

describe('scanMessage', () => {
  it('says a clean file is clean', () => {
    assert.deepEqual(scanMessage(scan()), { level: 'info', text: 'model.pt: no NaN, inf, extreme or all-zero values in 10 tensors (3.9 KiB).' });
  });

  it('is an error when a tensor has NaN, naming the first bad tensors', () => {
    const message = scanMessage(scan({ bad: [bad('fc.weight', 'error', 'nan'), bad('fc.bias', 'warning', 'all_zero')] }));
    assert.equal(message.level, 'error');
    assert.equal(message.text, 'model.pt: 1 tensor with NaN/inf, 1 suspect in 10 tensors (3.9 KiB): fc.weight (nan), fc.bias (all zero).');
  });

  it('is a warning for suspects only, and says when it was stopped', () => {
    const message = scanMessage(scan({ complete: false, scanned: 4, bad: [bad('x', 'warning', 'extreme')], unreadable: [{ key: 's', message: 'sparse' }] }));
    assert.equal(message.level, 'warning');
    assert.match(message.text, /1 suspect tensor in 4 tensors .*Stopped after 4 of 10\. 1 tensor could not be read\.$/);
  });

  it('shows invisible characters of keys as escapes', () => {
    assert.match(scanMessage(scan({ bad: [bad('a\u202eb', 'error', 'inf')] })).text, /a\\u202eb \(inf\)/);
  });
});

describe('convertMessage', () => {
  it('counts tensors, tied names, left-out and dropped entries', () => {
    const written: ConvertSummary = {
      out: '/w/model.safetensors', tensors: 62, bytes: 174_592, aliases: { 'lm_head.weight': 'embed.weight' },
      left_out: { optimizer_state: 30 }, dropped: [{ key: 'epoch', what: 'int' }], dropped_count: 1, model_only: true,
    };
    assert.equal(convertMessage(written), "Wrote model.safetensors: 62 tensors, 171 KiB (the model's parameters and buffers); "
      + '1 tied name stored once (safetensors.torch.load_model ties them again); left out: 30 optimizer state tensors; dropped 1 non-tensor entry.');
  });
});

describe('compareTargets', () => {
  it('takes two selected files as A and B', () => {
    assert.deepEqual(compareTargets('x', ['a', 'b'], 'c'), { a: 'a', b: 'b' });
  });
  it('takes the clicked file, else the active one, as A', () => {
    assert.deepEqual(compareTargets('x', ['x'], 'c'), { a: 'x' });
    assert.deepEqual(compareTargets(undefined, undefined, 'c'), { a: 'c' });
    assert.deepEqual(compareTargets(undefined, undefined, undefined), {});
  });
});

describe('safetensorsName', () => {
  it('replaces the extension', () => {
    assert.equal(safetensorsName('/w/resnet.pth'), 'resnet.safetensors');
    assert.equal(safetensorsName('/w/ckpt.pth.tar'), 'ckpt.safetensors');
    assert.equal(safetensorsName('/w/pytorch_model.bin'), 'pytorch_model.safetensors');
  });
});

describe('scan marks in the tree', () => {
  const node: NodeSummary = { path: ['enc'], key: 'enc', name: 'enc', kind: 'group', type: '', child_count: 2, scan: { severity: 'error', label: '2 bad tensors', tensors: 2 } };
  it('shows the server\'s label and an error icon', () => {
    const look = nodeLook(node);
    assert.deepEqual(look.icon, { id: 'error', color: 'errorForeground' });
    assert.match(look.description, /^2 bad tensors · /);
    assert.match(nodeTooltipMarkdown(node), /scan: `2 bad tensors`/);
  });
  it('a warning is a warning', () => {
    assert.equal(nodeLook({ ...node, scan: { severity: 'warning', label: 'all zero', tensors: 1 } }).icon.id, 'warning');
  });
});
