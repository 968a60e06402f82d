/* A query's words marked in text: the regular expression, <mark> wrapping, and snippets around the first match. */

import { el, textNodesOutsideCode } from './dom.js';

const STOP_WORDS = new Set(('a an and are as at be by do does for from how in is it of on or that the this to ' +
  'was were what when where which who why with').split(' '));

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A regular expression matching the query's words in a text (prefix match for longer words), or null. */
export function queryRegex(query) {
  const words = (String(query || '').toLowerCase().match(/[\p{L}\p{N}]+/gu) || []);
  let kept = words.filter((w) => w.length > 1 && !STOP_WORDS.has(w));
  if (!kept.length) kept = words.filter((w) => w.length > 0);
  if (!kept.length) return null;
  const parts = [...new Set(kept)].sort((a, b) => b.length - a.length).map((w) => {
    if (w.length >= 5) {
      const stem = w.replace(/(ies|es|s|ing|ed)$/u, '');
      return `${escapeRe(stem.length >= 4 ? stem : w)}[\\p{L}\\p{N}]*`;
    }
    return `${escapeRe(w)}(?![\\p{L}\\p{N}])`;
  });
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${parts.join('|')})`, 'giu');
}

/** Appends text to parent, wrapping the regex's matches in <mark>; text only, never markup. */
export function appendHighlighted(parent, text, re) {
  if (!re) {
    parent.append(document.createTextNode(text));
    return 0;
  }
  let last = 0;
  let count = 0;
  re.lastIndex = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m[0].length === 0) { re.lastIndex += 1; continue; }
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    parent.append(el('mark', { text: m[0] }));
    last = m.index + m[0].length;
    count += 1;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  return count;
}

/** Marks the regex's matches in every text node under root, except inside code (quoted as written). */
export function highlightWithin(root, re) {
  if (!re) return;
  for (const node of textNodesOutsideCode(root)) {
    const frag = document.createDocumentFragment();
    if (appendHighlighted(frag, node.data, re)) node.replaceWith(frag);
  }
}

/** About `size` characters of one-line text (markdownText's) around the first match. */
export function snippet(flat, re, size = 360) {
  if (flat.length <= size) return flat;
  let at = 0;
  if (re) {
    re.lastIndex = 0;
    const m = re.exec(flat);
    if (m) at = m.index;
  }
  let start = Math.max(0, at - Math.floor(size / 3));
  if (start > 0) {
    const space = flat.indexOf(' ', start);
    if (space !== -1 && space < at) start = space + 1;
  }
  let end = Math.min(flat.length, start + size);
  if (end < flat.length) {
    const space = flat.lastIndexOf(' ', end);
    if (space > start + size / 2) end = space;
  }
  return `${start > 0 ? '… ' : ''}${flat.slice(start, end)}${end < flat.length ? ' …' : ''}`;
}
