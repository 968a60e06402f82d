/* The live event log: what changed in each job (status, stage, attempts), newest first. */

import { $, clear, el } from './dom.js';
import { docName } from './docs.js';
import { openDoc } from './docview.js';
import { clock } from './format.js';
import { TERMINAL } from './state.js';

const MAX_LOG = 400;

export function logEvent(text, { kind = 'job', jobId, documentId, status } = {}) {
  const list = $('#event-log');
  const line = el('li', {
    class: `event ${kind}-event${status ? ` ev-${status}` : ''}`,
    dataset: jobId ? { jobId } : undefined,
  },
  el('time', { datetime: new Date().toISOString(), text: clock(new Date()) }),
  documentId ? el('span', { class: 'ev-doc', text: docName(documentId) }) : null,
  el('span', { class: 'ev-text', text }));
  if (documentId) {
    line.classList.add('clickable');
    line.addEventListener('click', () => openDoc(documentId));
  }
  list.prepend(line);
  while (list.children.length > MAX_LOG) list.lastElementChild.remove();
}

export function logChanges(prev, job) {
  const ctx = { jobId: job.id, documentId: job.document_id, status: job.status };
  if (!prev) {
    // A job first seen already under way or done is state, not a change (the socket's first burst).
    if (job.status === 'queued') logEvent('new job · queued', ctx);
    return;
  }
  if (prev.status !== job.status) {
    let text = `${prev.status} → ${job.status}`;
    if (job.status === 'failed' && job.error) text += ` · ${job.error}`;
    logEvent(text, ctx);
  }
  if (job.stage && prev.stage !== job.stage && !TERMINAL.has(job.status)) {
    logEvent(prev.stage ? `stage ${prev.stage} → ${job.stage}` : `stage ${job.stage}`, ctx);
  }
  if (prev.attempts !== undefined && job.attempts > 1 && prev.attempts !== job.attempts) {
    logEvent(`attempt ${job.attempts}`, ctx);
  }
  // Stage retries and failures, as the per-stage list shows them.
  const before = new Map((prev.stages || []).map((s) => [s.name, s]));
  for (const s of job.stages || []) {
    const old = before.get(s.name);
    if (!old) continue;
    if ((s.attempts || 0) > (old.attempts || 0) && (old.attempts || 0) > 0) {
      logEvent(`${s.name}: attempt ${s.attempts}`, ctx);
    }
    if (s.state !== old.state && (s.state === 'failed' || s.state === 'crashed')) {
      logEvent(`${s.name} ${s.state}${s.error ? ` · ${s.error}` : ''}`, ctx);
    }
  }
}

export function wireEventLog() {
  $('#log-clear').addEventListener('click', () => clear($('#event-log')));
}
