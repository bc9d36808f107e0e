import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countOf, formatBytes, formatCount, formatParameterCounts, formatRoleSummary } from '../src/format';
import type { NodeSummary, OpenResult, RoleTableJson, TensorJson } from '../src/protocol';
import {
  fileLook, markdownCode, markdownText, MAX_PAGE, nodeId, nodeLook, nodeTooltipMarkdown, pagesUpTo, problemText, remainingChildren, roleRows,
  roleTooltipMarkdown, storageText, tensorTooltipMarkdown, visibleText,
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
    assert.equal(unknown.icon.id, 'symbol-parameter'); // no "not stored" mark on every row
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

  it('shows what a container holds by role, as the server counted it: parameters in elements, the rest in tensors', () => {
    const optimizer = roles({}, { optimizer_state: { tensors: 18, elements: 1540, bytes: 6160 } });
    assert.equal(nodeLook(node({ kind: 'dict', type: 'dict', child_count: 2, name: 'optimizer', counts: optimizer })).description, 'dict · 2 items · 18 optimizer tensors');
    const one = roles({}, { optimizer_state: { tensors: 1, elements: 4, bytes: 16 }, buffer: { tensors: 1, elements: 1, bytes: 8 } });
    assert.equal(nodeLook(node({ kind: 'dict', type: 'dict', child_count: 1, name: 'x', counts: one })).description, 'dict · 1 item · 1 buffer · 1 optimizer tensor');
    const tooltip = nodeTooltipMarkdown(node({ kind: 'dict', type: 'dict', counts: roles({ tensors: 14, elements: 1552, bytes: 6208, not_stored: 1552 }) }));
    assert.ok(tooltip.includes('model parameters: 14 tensors · 1,552 elements · 6.1 KiB'), tooltip);
    assert.ok(tooltip.includes('requires_grad not saved for any of them: trainable after load_state_dict'), tooltip);
  });

  it("says a state_dict module's parameters without repeating that the flag is not saved", () => {
    const look = nodeLook(node({
      module: undefined, kind: 'group', type: '', name: 'layer1',
      counts: roles({ tensors: 2, elements: 2320, bytes: 9280, not_stored: 2320 }, { buffer: { tensors: 3, elements: 33, bytes: 136 } }),
    }));
    assert.equal(look.description, '2 items · 2.3K params · 3 buffers');
    assert.doesNotMatch(look.description, /not stored|flag/);
  });

  it('does not repeat the class as the type in a module tooltip', () => {
    const tooltip = nodeTooltipMarkdown(node({ module: { path: ['conv1'], key: 'conv1', class: 'torch.nn.modules.conv.Conv2d', training: false, parameters: { total: 1, trainable: 0, frozen: 1, unknown: 0 } } }));
    assert.equal(tooltip.split('torch.nn.modules.conv.Conv2d').length, 2, tooltip);
  });
});

describe('fileLook', () => {
  function opened(overrides: Partial<OpenResult> & { parameter?: Partial<RoleTableJson['parameter']> }): OpenResult {
    const counts = roles({ tensors: 32, elements: 43_226, bytes: 172_904, ...overrides.parameter });
    return {
      file: '/ws/models/whole_model.pth', format: 'torch-zip', size: 202_361, metadata: {}, models: [], globals: [],
      loader: { call: 'torch.load', weights_only: true, own_types_only: false, weights_only_refuses: '', refuses: '' }, warnings: [], errors: [],
      summary: { tensors: 62, modules: 35, roles: counts, parameters: { total: 0, trainable: 0, frozen: 0, unknown: 0 }, requires_grad_stored: true,
        bytes_by_dtype: {}, tensor_bytes: 0, storage_bytes: 0, locations: {}, kinds: {}, globals_by_risk: {} },
      root: node({ path: [], key: '', name: '', kind: 'module', type: 'demo_models.SmallResNet', counts,
        module: { path: [], key: '', class: 'demo_models.SmallResNet', training: true, parameters: { total: 0, trainable: 0, frozen: 0, unknown: 0 } } }),
      children: [], parts: [], part_of: null, unimportable: [], safety: null, ...overrides,
    };
  }

  it('names the file, its class and its trainable/frozen totals', () => {
    const look = fileLook(opened({ parameter: { trainable: 33_418, frozen: 9_808 } }));
    assert.equal(look.label, 'whole_model.pth');
    assert.equal(look.description, 'SmallResNet · 33.4K trainable · 9.8K frozen');
    assert.ok(look.tooltip.includes('whole\\_model\\.pth') && look.tooltip.includes('`demo_models.SmallResNet`'), look.tooltip);
  });

  it("states once, on the file, that a state_dict's requires_grad was not saved", () => {
    const look = fileLook(opened({ parameter: { not_stored: 43_226 }, root: node({ path: [], key: '', name: '', kind: 'dict', type: 'collections.OrderedDict' }) }));
    assert.equal(look.description, 'OrderedDict · 43.2K params · requires_grad not saved');
  });

  it('says when the file could not be read', () => {
    assert.equal(fileLook(opened({ root: null })).description, 'could not be read');
  });
});

describe('roleRows', () => {
  it("says a role row's requires_grad in words, once", () => {
    const counts = roles({ tensors: 32, elements: 43_226, bytes: 1, trainable: 33_418, frozen: 9_808 });
    const [parameters] = roleRows(counts);
    assert.ok(parameters);
    assert.match(roleTooltipMarkdown(parameters, counts), /requires_grad: 33,418 trainable, 9,808 frozen \(elements\)/);
  });

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
  it('states each fact once: shape and dtype, size, requires_grad, role, device, storage', () => {
    const text = tensorTooltipMarkdown(tensor(), ['fc.weight']);
    for (const expected of ['shape | `[16, 3, 3, 3] float32`', 'size | `432 elements · 1.7 KiB`', 'requires_grad | `False (frozen)`', 'role | `model parameter`', 'device | `cpu`', 'storage | `shared with fc.weight`']) {
      assert.ok(text.includes(expected), `missing ${expected} in\n${text}`);
    }
    assert.equal(text.split('frozen').length, 2, `"frozen" twice in\n${text}`);
    assert.doesNotMatch(text, /saved as|stride|storage offset/);
  });

  it('leaves requires_grad out where the file does not store it (the file row says so once)', () => {
    assert.doesNotMatch(tensorTooltipMarkdown(tensor({ kind: 'tensor', grad_state: 'not stored' })), /requires_grad|not stored/);
    assert.doesNotMatch(tensorTooltipMarkdown(tensor({ kind: 'buffer', role: 'buffer', grad_state: 'not stored' })), /requires_grad/);
  });

  it('says how a view sits in its storage, readably', () => {
    assert.equal(storageText(tensor(), []), undefined); // its own storage: nothing to say
    const view = tensor({ shape: [4], stride: [2], storage_offset: 3, numel: 4, nbytes: 16, storage: '6', storage_nbytes: 9216 });
    assert.equal(storageText(view, []), 'a view of a 9.0 KiB storage from element 3, stride [2]');
    assert.doesNotMatch(tensorTooltipMarkdown(view), /storage 6|\b6, 9\.0/);
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
      assert.equal(lines.length, 10, tip); // title, blank, table head (2 lines), 6 rows (the tied tensor makes a storage row)
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

  it('loads whole pages up to a revealed index, at most a server page at a time', () => {
    assert.equal(pagesUpTo(500, 2999, 500), 2500); // index 2999 of 3,000: five more pages in one request
    assert.equal(pagesUpTo(500, 500, 500), 500);
    assert.equal(pagesUpTo(0, 10, 500), 500);
    assert.equal(pagesUpTo(0, 50_000, 500), MAX_PAGE);
  });
});

describe('format', () => {
  it('formats counts, bytes and parameter counts', () => {
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(1234), '1.2K');
    assert.equal(formatCount(11_689_512), '11.7M');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatParameterCounts({ tensors: 1, elements: 10, bytes: 40, trainable: 0, frozen: 0, not_stored: 10 }), '10 params');
    assert.equal(formatParameterCounts({ tensors: 2, elements: 11, bytes: 44, trainable: 1, frozen: 0, not_stored: 10 }), '1 trainable · 10 without a stored flag');
    assert.equal(formatParameterCounts(roles().parameter), '');
    assert.equal(countOf(1, 'class', 'classes'), '1 class');
    assert.equal(countOf(2_000, 'tensor'), '2K tensors');
    assert.equal(formatRoleSummary(roles({}, { buffer: { tensors: 3, elements: 9, bytes: 36 }, other: { tensors: 1, elements: 1, bytes: 4 } })), '3 buffers · 1 other tensor');
  });
});
