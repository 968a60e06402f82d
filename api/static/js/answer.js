/* An assistant turn: the answer (markdown) with its [n] markers linked to the sources, the cited sources, and
 * the other retrieved passages folded. A source or a marker opens the document at its passage or second. */

import { clear, el, textNodesOutsideCode } from './dom.js';
import { docName } from './docs.js';
import { openDoc } from './docview.js';
import { citation, visible } from './format.js';
import { appendHighlighted, queryRegex, snippet } from './highlight.js';
import { markdownText, renderAnswerMarkdown } from './markdown.js';

const MARKER = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g; // [1], [1, 2], [1; 2]

function openSource(source, question, node, sentence = '') {
  for (const other of document.querySelectorAll('#chat-log .source.opened')) other.classList.remove('opened');
  if (node) node.classList.add('opened');
  openDoc(source.document_id, {
    text: source.text, start_s: source.start_s, end_s: source.end_s, page: source.page, page_end: source.page_end, query: null,
    from: 'chat', question, sentence,
  });
}

const sourceTitle = (source) => (source.title ? visible(source.title) : docName(source.document_id));

function markerGroup(nums, byN, question, turnKey, sentence) {
  const group = el('span', { class: 'cites' });
  for (const n of nums) {
    const source = byN.get(n);
    const where = citation(source);
    group.append(el('a', {
      class: 'cite-marker', href: `#${turnKey}-src-${n}`, dataset: { n: String(n), documentId: source.document_id },
      title: `${sourceTitle(source)}${where ? ` · ${where}` : ''}`, text: `[${n}]`,
      onclick: (e) => {
        e.preventDefault();
        const item = document.getElementById(`${turnKey}-src-${n}`);
        if (item && item.closest('details')) item.closest('details').open = true;
        openSource(source, question, item, sentence);
      },
    }));
  }
  return group;
}

/** Turns the [n] markers in the rendered answer's text (not in code) into links to the sources they name;
 * each carries the words since the previous marker, the sentence it cites. */
function linkMarkers(root, byN, question, turnKey) {
  let since = '';
  let previous = '';
  for (const node of textNodesOutsideCode(root)) {
    const text = node.data;
    const frag = document.createDocumentFragment();
    let last = 0;
    let m;
    MARKER.lastIndex = 0;
    while ((m = MARKER.exec(text)) !== null) {
      const nums = m[1].split(/\s*[,;]\s*/).map(Number);
      if (!nums.every((n) => byN.has(n))) continue; // not a citation of a listed source: stays text
      const sentence = (since + text.slice(last, m.index)).trim() || previous; // "… [1][2]": both cite the same words
      previous = sentence;
      since = '';
      if (m.index > last) frag.append(text.slice(last, m.index));
      frag.append(markerGroup(nums, byN, question, turnKey, sentence));
      last = m.index + m[0].length;
    }
    since += text.slice(last);
    if (last === 0) continue;
    if (last < text.length) frag.append(text.slice(last));
    node.replaceWith(frag);
  }
}

function sourceItem(source, question, re, turnKey) {
  const where = citation(source);
  const timed = Number.isFinite(source.start_s);
  const body = el('span', { class: 'source-text' });
  appendHighlighted(body, snippet(markdownText(source.text), re, 220), re);
  const link = el('a', {
    class: 'source-link', href: `#${turnKey}-src-${source.n}`,
    title: timed ? 'open the recording at this second' : 'open the document at this passage',
  },
  el('span', { class: 'source-head' },
    el('span', { class: 'source-n', text: `[${source.n}]` }),
    el('span', { class: 'source-title', text: sourceTitle(source) }),
    where ? el('span', { class: `cite ${timed ? 'cite-time' : 'cite-page'}`, text: where }) : null,
    source.kind ? el('span', { class: `kind kind-${source.kind}`, text: source.kind }) : null),
  source.headings && source.headings.length ? el('span', { class: 'source-path', text: source.headings.join(' › ') }) : null,
  body);
  const item = el('li', {
    class: `source${source.cited ? ' cited' : ''}`, id: `${turnKey}-src-${source.n}`,
    dataset: { n: String(source.n), documentId: source.document_id, chunkId: source.chunk_id || '' },
  }, link);
  if (timed) item.dataset.startS = String(source.start_s);
  if (Number.isFinite(source.page)) item.dataset.page = String(source.page);
  link.addEventListener('click', (e) => {
    e.preventDefault();
    openSource(source, question, item);
  });
  return item;
}

/** Fills node with an answer (POST /v1/chat's, or a stored turn's) to `question`. */
export function renderAssistant(node, data, question) {
  clear(node);
  node.className = 'turn turn-assistant';
  if (data.turn_id) node.dataset.turnId = data.turn_id;
  const sources = (Array.isArray(data.sources) ? data.sources : []).filter((s) => s && Number.isFinite(Number(s.n)));
  const byN = new Map(sources.map((s) => [Number(s.n), s]));
  const turnKey = `t${data.turn_id ? String(data.turn_id).replace(/[^\w-]/g, '') : Math.random().toString(36).slice(2)}`;
  const answer = el('div', { class: 'turn-text answer markdown' }, renderAnswerMarkdown(data.answer));
  linkMarkers(answer, byN, question, turnKey);
  node.append(el('div', { class: 'turn-role', text: 'Answer' }), answer);

  // Cited: flagged by the API, or named by a marker in the answer (stored turns of older versions).
  const named = new Set();
  for (const m of String(data.answer || '').matchAll(MARKER)) {
    m[1].split(/\s*[,;]\s*/).forEach((n) => named.add(Number(n)));
  }
  const cited = sources.filter((s) => s.cited || named.has(Number(s.n)));
  const others = sources.filter((s) => !cited.includes(s));
  const re = queryRegex(question);
  if (cited.length) {
    node.append(el('div', { class: 'sources-h', text: cited.length === 1 ? 'Source' : 'Sources' }),
      el('ol', { class: 'sources' }, cited.map((s) => sourceItem({ ...s, cited: true }, question, re, turnKey))));
  }
  if (others.length) {
    node.append(el('details', { class: 'more-sources' },
      el('summary', { text: cited.length ? `${others.length} more passage${others.length === 1 ? '' : 's'} retrieved`
        : `${others.length} passage${others.length === 1 ? '' : 's'} retrieved, none cited` }),
      el('ol', { class: 'sources' }, others.map((s) => sourceItem(s, question, re, turnKey)))));
  }
  const meta = [];
  if (data.mode) meta.push(data.mode === 'llm' ? 'generated from the cited passages' : 'extractive: sentences quoted from the passages');
  const used = Array.isArray(data.chat_context_used) ? data.chat_context_used.length : 0;
  if (used) meta.push(`used ${used} earlier turn${used === 1 ? '' : 's'} of this conversation`);
  if (meta.length) node.append(el('div', { class: 'turn-meta muted', text: meta.join(' · ') }));
  for (const note of Array.isArray(data.notes) ? data.notes : []) node.append(el('div', { class: 'turn-note', text: note }));
}
