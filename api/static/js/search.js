/* Search: ranked passages with the query's words marked; a hit opens its document at the passage or second. */

import { api } from './api.js';
import { $, clear, el } from './dom.js';
import { docName } from './docs.js';
import { openDoc } from './docview.js';
import { citation, visible } from './format.js';
import { appendHighlighted, queryRegex, snippet } from './highlight.js';
import { markdownText } from './markdown.js';
import { notify } from './notice.js';
import { state } from './state.js';

let searchToken = 0;

function hitItem(hit, q, re) {
  const focus = { text: hit.text, start_s: hit.start_s, end_s: hit.end_s, page: hit.page, page_end: hit.page_end, query: q,
    translation: Boolean(hit.translation) };
  const cite = citation(hit);
  const body = el('p', { class: 'hit-text' });
  appendHighlighted(body, snippet(markdownText(hit.text), re), re);
  const item = el('li', { class: 'hit', tabindex: 0, dataset: { documentId: hit.document_id, chunkId: hit.chunk_id } },
    el('div', { class: 'hit-head' },
      el('span', { class: 'hit-title', text: hit.title ? visible(hit.title) : docName(hit.document_id) }),
      cite ? el('span', { class: `cite ${Number.isFinite(hit.start_s) ? 'cite-time' : 'cite-page'}`, text: cite }) : null,
      el('span', { class: `kind kind-${hit.kind}`, text: hit.kind }),
      hit.translation ? el('span', { class: 'kind', title: 'from the English translation of the recording', text: 'translation' }) : null,
      el('span', { class: 'score', title: 'similarity score', text: Number(hit.score).toFixed(3) })),
    hit.headings && hit.headings.length ? el('div', { class: 'hit-path', text: hit.headings.join(' › ') }) : null,
    body);
  const open = () => openDoc(hit.document_id, focus);
  item.addEventListener('click', open);
  item.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
  return item;
}

async function runSearch(query) {
  const q = query.trim();
  const results = $('#search-results');
  const status = $('#search-status');
  if (!q) { clear(results); status.textContent = ''; return; }
  if (!state.key) { notify('Enter your API key first.'); $('#api-key').focus(); return; }
  const token = ++searchToken;
  status.textContent = 'Searching…';
  const params = new URLSearchParams({ q, k: '10' });
  const kind = $('#search-kind').value;
  if (kind) params.set('kind', kind);
  let data;
  try {
    data = await api(`/v1/search?${params}`);
  } catch (err) {
    if (token !== searchToken) return;
    clear(results);
    status.textContent = '';
    notify(`Search failed: ${err.message}`);
    return;
  }
  if (token !== searchToken) return;
  clear(results);
  const hits = data.hits || [];
  status.textContent = hits.length ? `${hits.length} result${hits.length === 1 ? '' : 's'} for “${data.query || q}”` : `No results for “${q}”.`;
  const re = queryRegex(q);
  for (const hit of hits) results.append(hitItem(hit, q, re));
}

export function wireSearch() {
  $('#search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runSearch($('#search-input').value);
  });
}
