import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBytes, formatCount, formatParameterCounts, formatRoleSummary } from '../src/format';
import type { NodeSummary, RoleTableJson, TensorJson } from '../src/protocol';
import {
  childTowards, markdownCode, markdownText, nodeId, nodeLook, nodeTooltipMarkdown, problemText, remainingChildren, roleRows, tensorTooltipMarkdown, visibleText,
} from '../src/treeModel';

function tensor(overrides: Partial<TensorJson> = {}): TensorJson {
  return {
    path: ['conv1', 'weight'], key: 'conv1.weight', shape: [16, 3, 3, 3], dtype: 'float32', requires_grad: false,
    grad_state: 'frozen', kind: 'parameter', role: 'parameter', location: 'cpu', stride: [27, 9, 3, 1], storage_offset: 0,
    numel: 432, nbytes: 1728, storage: '0', storage_nbytes: 1728, shared_with: [], layout: 'strided', part: null, sharding: null,
    ...overrides,
  };
}

function roles(parameter: Partial<RoleTableJson['parameter']> = {}, rest: Partial<RoleTableJson> = {}): RoleTableJson {
  const none = { tensors: 0, elements: 0, bytes: 0 };
  return {
    parameter: { ...none, trainable: 0, frozen: 0, not_stored: 0, ...parameter },
    buffer: none, optimizer_state: none, other: none, ...rest,
  };
}

function node(overrides: Partial<NodeSummary>): NodeSummary {
  return { path: ['conv1'], key: 'conv1', name: 'conv1', kind: 'module', type: 'torch.nn.modules.conv.Conv2d', child_count: 2, ...overrides };
}

describe('nodeLook', () => {
  it('shows a module with its class and trainable/frozen counts', () => {
    const look = nodeLook(node({
      module: { path: ['conv1'], key: 'conv1', class: 'Conv2d', training: true, parameters: { total: 448, trainable: 16, frozen: 432, unknown: 0 } },
      counts: roles({ tensors: 2, elements: 448, bytes: 1792, trainable: 16, frozen: 432 }),
    }));
    assert.equal(look.label, 'conv1');
    assert.equal(look.description, 'Conv2d · 16 trainable · 432 frozen');
    assert.equal(look.expandable, true);
    assert.equal(look.contextValue, 'pthscope.node.module');
  });

  it('shows a tensor leaf with shape, dtype and a grad-state icon', () => {
    const frozen = nodeLook(node({ kind: 'tensor', name: 'weight', child_count: 0, tensor: tensor() }));
    assert.equal(frozen.description, '[16, 3, 3, 3] float32');
    assert.deepEqual(frozen.icon, { id: 'lock', color: 'charts.blue' });
    assert.equal(frozen.expandable, false);
    const trainable = nodeLook(node({ kind: 'tensor', child_count: 0, tensor: tensor({ requires_grad: true, grad_state: 'trainable' }) }));
    assert.equal(trainable.icon.id, 'flame');
    const unknown = nodeLook(node({ kind: 'tensor', child_count: 0, tensor: tensor({ kind: 'tensor', grad_state: 'not stored' }) }));
    assert.equal(unknown.icon.id, 'circle-outline');
    const buffer = nodeLook(node({ kind: 'tensor', child_count: 0, tensor: tensor({ kind: 'buffer', role: 'buffer', grad_state: 'not stored' }) }));
    assert.equal(buffer.icon.id, 'database');
    // A state_dict's running_mean is a plain tensor the server calls a buffer: the role decides.
    const stateDictBuffer = nodeLook(node({ kind: 'tensor', child_count: 0, tensor: tensor({ kind: 'tensor', role: 'buffer', grad_state: 'not stored' }) }));
    assert.equal(stateDictBuffer.icon.id, 'database');
  });

  it('shows a container with its type and item count, and a plain value with its repr', () => {
    assert.equal(nodeLook(node({ kind: 'dict', type: 'collections.OrderedDict', child_count: 62, name: 'state_dict' })).description, 'OrderedDict · 62 items');
    assert.equal(nodeLook(node({ kind: 'value', type: 'int', value: '3', child_count: 0, name: 'epoch' })).description, '3');
    assert.equal(nodeLook(node({ kind: 'dict', type: 'dict', name: '', path: [], key: '' })).label, '(root)');
  });

  it('shows what a container holds by role, as the server counted it', () => {
    const optimizer = roles({}, { optimizer_state: { tensors: 18, elements: 1540, bytes: 6160 } });
    assert.equal(nodeLook(node({ kind: 'dict', type: 'dict', child_count: 2, name: 'optimizer', counts: optimizer })).description, 'dict · 2 items · 1.5K optimizer state');
    const tooltip = nodeTooltipMarkdown(node({ kind: 'dict', type: 'dict', counts: roles({ tensors: 14, elements: 1552, bytes: 6208, not_stored: 1552 }) }));
    assert.ok(tooltip.includes('model parameters: 14 tensors · 1,552 elements · 6.1 KiB'), tooltip);
    assert.ok(tooltip.includes('flag not stored 1,552'), tooltip);
  });
});

describe('roleRows', () => {
  it('lists the four roles in the server\'s order, the empty ones as none', () => {
    const rows = roleRows(roles({ tensors: 46, elements: 891_469, bytes: 3_565_876 }, { buffer: { tensors: 1, elements: 8, bytes: 64 } }));
    assert.deepEqual(rows.map((r) => [r.label, r.description]), [
      ['model parameters', '46 tensors · 891,469 elements · 3.4 MiB'],
      ['buffers', '1 tensor · 8 elements · 64 B'],
      ['optimizer state', 'none'],
      ['other tensors', 'none'],
    ]);
  });
});

describe('tensorTooltipMarkdown', () => {
  it('states requires_grad and everything else the file stores', () => {
    const text = tensorTooltipMarkdown(tensor(), ['fc.weight']);
    for (const expected of ['requires_grad | `false`', 'frozen (requires_grad=False)', 'role | `model parameter`', 'saved as | `parameter`', '`float32`', '[16, 3, 3, 3]', '`432`', '1,728', '`cpu`', '[27, 9, 3, 1]', 'tied storage | `fc.weight`']) {
      assert.ok(text.includes(expected), `missing ${expected} in\n${text}`);
    }
  });

  it('says when requires_grad is not stored', () => {
    assert.ok(tensorTooltipMarkdown(tensor({ kind: 'tensor', grad_state: 'not stored' })).includes('requires_grad | `not stored`'));
  });
});

// Names a checkpoint can hold (tests/code_intel/hostile_text.py has the server's family).
const HOSTILE = [
  'x; import os', 'a b', '0', 'class', "'", '"', '\\', 'a\nb', 'a\r\nb', '\u0000', '\u001b[31m', '\u202eevil',
  '\u2066iso\u2069', '\u200bzw', 'x\u2028y', '\ufeff', '\t', '\ud800', '\u00a0', '`', '``', '```', '**x**', '_x_',
  '[a](command:foo)', '![i](x.png)', '<img src=x onerror=alert(1)>', '&lt;', 'https://evil.example/x',
  'www.evil.example', 'me@evil.example', '$(touch /tmp/pwn)', '# h', '- item', '1. x', '> q', '| a | b |', '=',
  '---', '    indented', ' ', '', '😀', '\u{E0041}tag',
];
const PUNCTUATION = /[!-/:-@[-`{-~]/;

/** The text CommonMark shows for escaped inline text (every escape a backslash + punctuation). */
function unescape(markdown: string): string {
  let out = '';
  for (let i = 0; i < markdown.length; i++) {
    const c = markdown[i];
    if (c === '\\') {
      assert.match(markdown[i + 1] ?? '', PUNCTUATION, markdown);
      out += markdown[++i];
    } else {
      assert.doesNotMatch(c, PUNCTUATION, `unescaped ${c} in ${markdown}`);
      out += c;
    }
  }
  return out;
}

function printable(text: string): boolean {
  return !/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u.test(text.replace(/\n/g, ''));
}

describe('tooltip Markdown from file text', () => {
  for (const text of HOSTILE) {
    it(`shows ${JSON.stringify(text)} as text only`, () => {
      assert.ok(printable(visibleText(text)));
      assert.equal(unescape(markdownText(text)), visibleText(text));
      const span = markdownCode(text);
      const fence = /^`+/.exec(span)?.[0] ?? '';
      const inner = span.slice(fence.length, span.length - fence.length);
      assert.ok(fence.length > 0 && span.endsWith(fence));
      assert.ok(!inner.includes(fence) && !inner.includes('\n'), span);
      assert.ok([visibleText(text), ` ${visibleText(text)} `, ' '].includes(inner), span);
      // A tooltip keeps its shape: one bold title line, rows of exactly two cells.
      const tip = tensorTooltipMarkdown(tensor({ key: text, dtype: text, location: text, storage: text }), [text]);
      assert.ok(printable(tip), tip);
      const lines = tip.split('\n');
      assert.equal(lines.length, text ? 17 : 16, tip); // an empty storage name has no row
      assert.match(lines[0], /^\*\*[^*]/, tip);
      for (const row of lines.slice(2)) {
        assert.equal(row.replace(/\\\|/g, '').split('|').length, 4, row);
      }
      const node = nodeTooltipMarkdown({ path: [text], key: text, name: text, kind: 'module', type: text, child_count: 1, value: text, module: { path: [text], key: text, class: text, training: true, parameters: { total: 0, trainable: 0, frozen: 0, unknown: 0 } } });
      assert.ok(printable(node) && node.split('  \n').every((line) => !line.includes('\n') || line.startsWith('**')), node);
      assert.ok(printable(nodeLook({ path: [text], key: text, name: text, kind: 'value', type: text, child_count: 0, value: text }).label));
      assert.ok(printable(problemText({ kind: 'corrupt', message: text, where: text })));
    });
  }
});

describe('paging and paths', () => {
  it('counts what a Load more item would fetch', () => {
    assert.equal(remainingChildren(500, 1200), 700);
    assert.equal(remainingChildren(1200, 1200), 0);
  });

  it('makes distinct ids for "1" and 1', () => {
    assert.notEqual(nodeId('/f.pth', ['a', 1]), nodeId('/f.pth', ['a', '1']));
  });

  it('finds the child that leads to a key, through modules and dotted-key groups', () => {
    const children = [{ key: 'layer1' }, { key: 'layer10' }, { key: 'model' }, { key: 'model.layers' }];
    assert.equal(childTowards(children, 'layer1.0.conv1.weight')?.key, 'layer1');
    assert.equal(childTowards(children, 'layer10.bias')?.key, 'layer10');
    assert.equal(childTowards(children, 'model.layers.3.weight')?.key, 'model.layers');
    assert.equal(childTowards(children, 'layer1')?.key, 'layer1');
    assert.equal(childTowards(children, 'fc.weight'), undefined);
  });
});

describe('format', () => {
  it('formats counts, bytes and parameter counts', () => {
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(1234), '1.2K');
    assert.equal(formatCount(11_689_512), '11.7M');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatParameterCounts({ tensors: 1, elements: 10, bytes: 40, trainable: 0, frozen: 0, not_stored: 10 }), '10 flag not stored');
    assert.equal(formatParameterCounts(roles().parameter), '');
    assert.equal(formatRoleSummary(roles({}, { buffer: { tensors: 3, elements: 9, bytes: 36 }, other: { tensors: 1, elements: 1, bytes: 4 } })), '3 buffers · 1 other tensor');
  });
});
