/* A recording's transcript in the document view: timed lines, the cited span marked, a timestamp seeks the player. */

import { api } from './api.js';
import { seekAudio } from './audio.js';
import { $, clear, el, scrollWithin } from './dom.js';
import { mmss } from './format.js';
import { appendHighlighted, queryRegex } from './highlight.js';
import { state } from './state.js';

/** The view's line when its text (a transcript, or a document's markdown) cannot be had. */
export function textUnavailable(text, err, what) {
  clear(text);
  text.append(el('p', {
    class: err.status === 409 ? 'muted' : 'error-text',
    text: err.status === 409 ? `Not available yet: ${err.message}.` : `Could not load the ${what}: ${err.message}`,
  }));
  $('#doc-view').dataset.state = 'unavailable';
}

export async function loadTranscript(doc, version, focus, token) {
  const text = $('#doc-text');
  const view = $('#doc-view');
  const fetchVersion = (v) => api(`/v1/documents/${encodeURIComponent(doc.id)}/transcript?format=json&version=${encodeURIComponent(v)}`);
  let data;
  let note = '';
  try {
    data = await fetchVersion(version);
  } catch (err) {
    if (version === 'improved' && (err.status === 404 || err.status === 409)) {
      try {
        data = await fetchVersion('raw');
        note = `The improved transcript is not available (${err.message}); showing the raw one.`;
      } catch (_) { /* report the first error */ }
    }
    if (!data) {
      if (token === state.docToken) textUnavailable(text, err, 'transcript');
      return;
    }
  }
  if (token !== state.docToken) return;
  clear(text);
  if (note) text.append(el('p', { class: 'muted', text: note }));
  const head = [];
  if (data.version === 'live') head.push('as heard live (the full transcription follows)');
  if (data.version === 'translation') head.push('translated into English by Whisper; each line at the seconds it translates');
  else if (data.language) {
    const sure = Number.isFinite(data.language_probability) ? ` (${data.language_probability.toFixed(2)})` : '';
    head.push(`language: ${data.language}${sure}`);
  }
  if (Number.isFinite(data.duration_s)) head.push(`duration: ${mmss(data.duration_s)}`);
  if (head.length) text.append(el('p', { class: 'transcript-head muted', text: head.join(' · ') }));
  const re = focus && focus.query ? queryRegex(focus.query) : null;
  const list = el('ol', { class: 'transcript' });
  for (const seg of data.segments || []) {
    const line = el('li', { class: 'seg', dataset: { start: String(seg.start), end: String(seg.end) } },
      el('button', { type: 'button', class: 'ts', title: `${mmss(seg.start)} – ${mmss(seg.end)}`, text: `[${mmss(seg.start)}]` }));
    const span = el('span', { class: 'seg-text' });
    appendHighlighted(span, ` ${String(seg.text || '').trim()}`, re);
    line.append(span);
    list.append(line);
  }
  if (!list.children.length) text.append(el('p', { class: 'muted', text: 'The transcript is empty.' }));
  text.append(list);
  view.dataset.state = 'loaded';
  text.scrollTop = 0;
  if (focus && Number.isFinite(focus.start_s)) selectTime(focus.start_s, focus.end_s);
}

/** Marks the transcript lines of a time span (the line containing `start` is the active one) and scrolls to it. */
function selectTime(start, end) {
  const container = $('#doc-text');
  const segs = [...container.querySelectorAll('.seg')];
  if (!segs.length) return;
  let active = null;
  for (const seg of segs) {
    const s = Number(seg.dataset.start);
    const e = Number(seg.dataset.end);
    seg.classList.toggle('in-span', Number.isFinite(end) && e > start && s < end);
    seg.classList.remove('active');
    if (!active && s <= start + 0.01 && start < e) active = seg;
  }
  if (!active) active = segs.reduce((best, seg) => (Math.abs(Number(seg.dataset.start) - start) < Math.abs(Number(best.dataset.start) - start) ? seg : best), segs[0]);
  active.classList.add('active');
  $('#doc-view').dataset.time = String(start);
  scrollWithin(container, active);
}

export function wireTranscript() {
  $('#doc-text').addEventListener('click', (e) => {
    const ts = e.target.closest('button.ts');
    if (!ts) return;
    const seg = ts.closest('.seg');
    const at = Number(seg.dataset.start);
    selectTime(at, NaN);
    seekAudio(at, true);
  });
}
