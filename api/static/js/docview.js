/* The document view: a document's metadata and its text (markdown or transcript), opened at a cited passage. */

import { api } from './api.js';
import { loadAudio, releaseAudio, seekAudio } from './audio.js';
import { $, clear, el, scrollWithin } from './dom.js';
import { citation, fmtBytes, shortId, visible } from './format.js';
import { docName, rememberDoc } from './docs.js';
import { queryRegex } from './highlight.js';
import { renderMarkdown } from './markdown.js';
import { state } from './state.js';
import { loadTranscript, textUnavailable, wireTranscript } from './transcript.js';

export function closeDoc() {
  state.docToken += 1;
  state.openDocId = null;
  releaseAudio();
  const view = $('#doc-view');
  view.hidden = true;
  view.removeAttribute('data-document-id');
  view.removeAttribute('data-time');
  for (const row of state.rows.values()) row.classList.remove('selected');
}

function flag(label, on) {
  return el('span', { class: `flag ${on ? 'flag-on' : 'flag-off'}`, title: `${label}: ${on ? 'yes' : 'no'}` }, on ? '✓ ' : '✗ ', label);
}

function renderDocMeta(doc) {
  const meta = $('#doc-meta');
  clear(meta);
  const dl = el('dl', { class: 'kv' });
  const add = (k, v) => {
    if (v === undefined || v === null || v === '') return;
    dl.append(el('dt', { text: k }), el('dd', {}, v));
  };
  add('File', visible(doc.filename));
  add('Kind', `${doc.kind}${doc.format ? ` · ${doc.format}` : ''}`);
  // A recording's language as Whisper detected it, and how sure it was (an English-only model always says en, 1).
  if (doc.language) {
    const sure = Number.isFinite(doc.language_probability) ? ` (probability ${doc.language_probability.toFixed(2)})` : '';
    add('Language', `${doc.language}${sure}`);
  }
  if (doc.size_bytes) add('Size', fmtBytes(doc.size_bytes) + (doc.page_count ? ` · ${doc.page_count} pages` : ''));
  add('Chunks', String(doc.chunk_count ?? 0) + (doc.entity_count ? ` · ${doc.entity_count} ${doc.entity_count === 1 ? 'entity' : 'entities'}` : ''));
  add('Indexed', el('span', { class: 'flags' },
    flag('vectors', doc.vector_indexed), flag('entities', doc.entities_extracted), flag('graph', doc.graph_indexed)));
  const models = doc.models && typeof doc.models === 'object' ? Object.entries(doc.models) : [];
  if (models.length) {
    const ul = el('ul', { class: 'models' });
    for (const [k, v] of models) {
      const text = v && typeof v === 'object' ? Object.values(v).filter((x) => x !== null && typeof x !== 'object').join(' ') : String(v);
      ul.append(el('li', {}, el('span', { class: 'muted', text: `${k}: ` }), text));
    }
    add('Models', ul);
  }
  if (doc.latest_job) {
    const j = doc.latest_job;
    add('Latest job', el('span', {}, el('span', { class: `job-status status-${j.status}`, text: j.status }), ` #${shortId(j.id)}`));
  }
  if (doc.redact) {
    add('Redacted', Number.isFinite(doc.redacted_spans)
      ? `${doc.redacted_spans} ${doc.redacted_spans === 1 ? 'item' : 'items'} of personal data replaced`
      : 'personal data will be replaced');
  }
  if (doc.translate) add('Translation', 'English, beside what was said (Transcript: English translation)');
  if (doc.last_error) add('Last error', el('span', { class: 'job-error', text: doc.last_error }));
  meta.append(dl);
}

/** The document's summary, each sentence linked to where the document says it (GET .../summary). */
async function loadSummary(doc, token) {
  const box = $('#doc-summary');
  clear(box);
  box.hidden = true;
  let summary;
  try {
    summary = await api(`/v1/documents/${encodeURIComponent(doc.id)}/summary`);
  } catch (_) {
    return; // not made yet (the job is still running) or none: the view goes without
  }
  if (token !== state.docToken || !summary || !summary.text) return;
  const cites = el('ol', { class: 'summary-cites' });
  for (const s of summary.sentences) {
    const where = citation({ start_s: s.start_s, end_s: s.end_s, page: s.page, page_end: s.page_end });
    const focus = { text: s.text, sentence: s.text, page: s.page, start_s: s.start_s };
    cites.append(el('li', {}, el('button', { type: 'button', class: 'linkish', text: where || 'in the text',
      title: s.text, onclick: () => openDoc(doc.id, focus) })));
  }
  const how = summary.mode === 'llm' ? `written by ${summary.model} from the cited sentences` : 'the most central sentences';
  box.append(el('h3', { text: 'Summary' }), el('p', { class: 'summary-text', text: summary.text }),
    el('p', { class: 'muted small', text: `${how}; cited:` }), cites);
  box.hidden = false;
}

/** Opens a document; focus (a search hit or a chat source) says which passage or second to show. */
export async function openDoc(documentId, focus = null) {
  if (!documentId) return;
  const token = ++state.docToken;
  state.openDocId = documentId;
  for (const row of state.rows.values()) row.classList.toggle('selected', row.dataset.documentId === documentId);
  if (state.audio.documentId && state.audio.documentId !== documentId) releaseAudio();
  const view = $('#doc-view');
  view.hidden = false;
  view.dataset.documentId = documentId;
  view.dataset.state = 'loading';
  view.removeAttribute('data-time');
  $('#doc-title').textContent = docName(documentId);
  clear($('#doc-meta'));
  const text = $('#doc-text');
  clear(text);
  text.append(el('p', { class: 'muted', text: 'Loading…' }));
  $('#doc-tools').hidden = true;
  if (window.matchMedia('(max-width: 1100px)').matches) view.scrollIntoView({ behavior: 'smooth', block: 'start' });

  let doc;
  try {
    doc = await api(`/v1/documents/${encodeURIComponent(documentId)}`);
  } catch (err) {
    if (token !== state.docToken) return;
    clear(text);
    text.append(el('p', { class: 'error-text', text: `Could not open the document: ${err.message}` }));
    view.dataset.state = 'error';
    return;
  }
  if (token !== state.docToken) return;
  rememberDoc(doc);
  $('#doc-title').textContent = docName(doc.id);
  renderDocMeta(doc);
  loadSummary(doc, token); // beside the text, not before it
  view._doc = doc;
  view._focus = focus;
  if (doc.kind === 'audio') {
    $('#doc-tools').hidden = false;
    // A subtitle file (text/vtt, SRT) is a transcript with its seconds and nothing to play; a redacted
    // recording's sound is not served unless its owner keeps the original.
    const playable = /^(audio|video)\//.test(doc.mime_type || 'audio/') && !(doc.redact && !doc.keep_original);
    if (playable) loadAudio(doc); // in parallel with the transcript
    else if (state.audio.documentId) releaseAudio();
    if (playable && focus && Number.isFinite(focus.start_s)) seekAudio(focus.start_s);
    const translation = $('#doc-version option[value="translation"]');
    translation.hidden = !doc.translate;
    if (focus && focus.translation) $('#doc-version').value = 'translation';
    else if (!doc.translate && $('#doc-version').value === 'translation') $('#doc-version').value = 'improved';
    await loadTranscript(doc, $('#doc-version').value, focus, token);
  } else {
    if (state.audio.documentId) releaseAudio();
    await loadContent(doc, focus, token);
  }
}

async function loadContent(doc, focus, token) {
  const text = $('#doc-text');
  const view = $('#doc-view');
  let md;
  try {
    md = await api(`/v1/documents/${encodeURIComponent(doc.id)}/content`, { headers: { Accept: 'text/markdown, text/plain' } });
  } catch (err) {
    if (token === state.docToken) textUnavailable(text, err, 'text');
    return;
  }
  if (token !== state.docToken) return;
  clear(text);
  const re = focus && focus.query ? queryRegex(focus.query) : null;
  text.append(el('div', { class: 'markdown' }, renderMarkdown(typeof md === 'string' ? md : JSON.stringify(md), re)));
  view.dataset.state = 'loaded';
  text.scrollTop = 0;
  // From a [n] marker: the block holding the very sentence it cites (an extractive answer quotes it);
  // otherwise the passage's first block.
  let found = focus && focus.sentence ? focusText(text, focus.sentence, [8, 5]) : false;
  if (!found && focus && focus.text) found = focusText(text, focus.text);
  if (focus && focus.text && !found && Number.isFinite(focus.page)) {
    // The parsed text carries no page marks: say where the passage is when its words cannot be matched.
    text.prepend(el('p', { class: 'focus-note muted', text: `The cited passage is on ${citation(focus)}.` }));
  }
}

const norm = (s) => String(s || '').toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();

/** Marks and scrolls to the first block that contains the start of a search hit's text. */
function focusText(container, hitText, sizes = [10, 6, 3]) {
  const words = norm(hitText).split(' ').filter(Boolean);
  const blocks = [...container.querySelectorAll('.md-block, li, tr')];
  const normed = blocks.map((b) => norm(b.textContent));
  for (const n of sizes) {
    for (let start = 0; start + n <= Math.min(words.length, 60); start += n) {
      const probe = words.slice(start, start + n).join(' ');
      const idx = normed.findIndex((t) => t.includes(probe));
      if (idx !== -1) {
        const block = blocks[idx].closest('.md-block') || blocks[idx];
        block.classList.add('focus');
        scrollWithin(container, block);
        return true;
      }
    }
  }
  return false;
}

export function wireDocView() {
  $('#doc-close').addEventListener('click', closeDoc);
  $('#doc-version').addEventListener('change', () => {
    const view = $('#doc-view');
    if (view._doc && view._doc.kind === 'audio') loadTranscript(view._doc, $('#doc-version').value, view._focus, state.docToken);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('#doc-view').hidden) closeDoc();
  });
  wireTranscript();
}
