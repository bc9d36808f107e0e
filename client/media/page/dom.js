// @ts-check
// The page's small tools: DOM building (text enters only as textContent), codicons, and the text
// of numbers, sizes and counts (mirrors client/src/format.ts, which the extension uses).

export function formatExact(n) {
  return Number(n).toLocaleString('en-US');
}
export function formatBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
}
/** "1 class", "6 classes": a count and its noun. */
export function countOf(n, singular, plural) {
  return `${formatExact(n)} ${n === 1 ? singular : plural || `${singular}s`}`;
}
export function isFloat(dtype) {
  return /^(b?float|complex)/.test(dtype);
}
/** `text` cut in the middle to `max` characters: "model.layers.1…attn.q_proj.weight" (the end says most). */
export function middleEllipsis(text, max) {
  if (text.length <= max || max < 5) {
    return text;
  }
  const tail = Math.ceil((max - 1) * 0.6);
  return `${text.slice(0, max - 1 - tail)}…${text.slice(text.length - tail)}`;
}

/** What each role the server assigns is called. */

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name === 'className') {
      node.className = value;
    } else if (name === 'style') {
      Object.assign(node.style, value); // CSSOM, which the CSP allows (inline style attributes it does not)
    } else if (name === 'text') {
      node.textContent = value;
    } else if (name.startsWith('on')) {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child);
    }
  }
  return node;
}
export function codicon(name, extra) {
  return el('span', { className: `codicon codicon-${name}${extra ? ` ${extra}` : ''}`, 'aria-hidden': 'true' });
}

/** The reader's sentence with its `quoted` names as code: text nodes and <code> only. */
export function withCode(sentence) {
  return sentence.split('`').map((part, i) => (i % 2 === 1 ? el('code', { text: part }) : document.createTextNode(part)));
}

export function formatValue(v) {
  if (v === null || v === undefined) {
    return '—';
  }
  if (Number.isInteger(v) && Math.abs(v) < 1e15) {
    return formatExact(v);
  }
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e5 || a < 1e-4) ? v.toExponential(4) : String(Number(v.toPrecision(6)));
}
