/* The jobs table: one row per job, newest first, each cell redrawn only when what it shows changed. */

import { $, clear, el } from './dom.js';
import { docName } from './docs.js';
import { clampPct, fmtClock, fmtDuration, parseTime, shortId, visible } from './format.js';
import { badgeLabel, stagesOf, stageTitle } from './stages.js';
import { ACTIVE, state } from './state.js';

const MAX_ROWS = 200;

export function updateJobsMeta(total) {
  const n = state.rows.size;
  $('#jobs-empty').hidden = n > 0;
  const active = [...state.jobs.values()].filter((j) => ACTIVE.has(j.status)).length;
  const parts = [`${n} shown`];
  if (Number.isFinite(total) && total > n) parts[0] = `${n} of ${total}`;
  if (active) parts.push(`${active} active`);
  $('#jobs-count').textContent = parts.join(' · ');
}

function buildRow(job) {
  const row = el('tr', { dataset: { jobId: job.id } },
    el('td', { class: 'c-doc' }),
    el('td', { class: 'c-progress' }),
    el('td', { class: 'c-stages' }),
    el('td', { class: 'c-msg' }),
    el('td', { class: 'c-actions' }));
  row._sig = {};
  return row;
}

/** Places a row by creation time, newest first. */
function placeRow(row, job) {
  const tbody = $('#jobs');
  const t = parseTime(job.created_at);
  let before = null;
  if (t) {
    for (const other of tbody.children) {
      const oj = state.jobs.get(other.dataset.jobId);
      const ot = oj && parseTime(oj.created_at);
      if (ot && ot < t) { before = other; break; }
    }
  } else {
    before = tbody.firstElementChild; // no time known (just uploaded): on top
  }
  tbody.insertBefore(row, before);
  while (tbody.children.length > MAX_ROWS) {
    const last = tbody.lastElementChild;
    state.rows.delete(last.dataset.jobId);
    last.remove();
  }
}

/** Each cell re-renders only when what it shows changed: a click on a button never lands on a replaced one. */
function renderCell(row, index, sig, render) {
  if (row._sig[index] === sig) return;
  row._sig[index] = sig;
  const cell = row.children[index];
  clear(cell);
  render(cell);
}

function renderDocCell(row, job) {
  const doc = state.docs.get(job.document_id);
  renderCell(row, 0, JSON.stringify([docName(job.document_id), doc && doc.filename, job.kind, job.created_at]), (cell) => {
    cell.append(
      el('div', { class: 'doc-name', title: doc && doc.filename ? visible(doc.filename) : job.document_id, text: docName(job.document_id) }),
      el('div', { class: 'sub' },
        job.kind ? el('span', { class: `kind kind-${job.kind}`, text: job.kind }) : null,
        job.created_at ? el('span', { class: 'when', text: fmtClock(job.created_at) }) : null,
        el('span', { class: 'jid', title: `job ${job.id}`, text: `#${shortId(job.id)}` })));
  });
}

function renderProgressCell(row, job, pct) {
  const started = parseTime(job.started_at);
  const finished = parseTime(job.finished_at);
  const took = started && finished ? `took ${fmtDuration((finished - started) / 1000)}` : '';
  renderCell(row, 1, JSON.stringify([pct, job.status, took]), (cell) => {
    const bar = el('div', {
      class: `progress progress-${job.status}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
      'aria-valuenow': pct, 'aria-label': `progress ${pct}%`, dataset: { progress: String(pct) },
    }, el('div', { class: 'progress-fill', style: `width: ${pct}%` }));
    cell.append(bar, el('div', { class: 'progress-line' },
      el('span', { class: `job-status status-${job.status}`, text: job.status }),
      el('span', { class: 'pct', text: `${pct}%` }),
      took ? el('span', { class: 'took', title: 'from start to end', text: took }) : null));
  });
}

function renderStagesCell(row, job) {
  const { stages, inferred } = stagesOf(job);
  renderCell(row, 2, JSON.stringify([stages, inferred]), (cell) => {
    const box = el('div', { class: `stages${inferred ? ' inferred' : ''}` });
    for (const s of stages) {
      box.append(el('span', {
        class: `stage-badge state-${s.state}`, title: stageTitle(s), dataset: { stage: s.name, state: s.state },
      }, badgeLabel(s.name), s.attempts > 1 ? el('span', { class: 'attempts', text: `×${s.attempts}` }) : null));
    }
    cell.append(box);
  });
}

function renderMessageCell(row, job) {
  renderCell(row, 3, JSON.stringify([job.message, job.error, job.error_retryable, job.status, job.attempts]), (cell) => {
    cell.append(el('div', { class: 'job-message', text: job.message || '' }));
    if (job.error && job.error !== job.message) {
      cell.append(el('div', { class: job.status === 'cancelled' ? 'job-note' : 'job-error', text: job.error }));
    }
    const tags = el('div', { class: 'sub' });
    if (job.error && job.status === 'failed') tags.append(el('span', { class: `tag ${job.error_retryable ? 'tag-warn' : 'tag-bad'}`, text: job.error_retryable ? 'transient' : 'permanent' }));
    if (job.attempts > 1) tags.append(el('span', { class: 'tag', text: `attempt ${job.attempts}` }));
    if (tags.childNodes.length) cell.append(tags);
  });
}

function renderActionsCell(row, job) {
  renderCell(row, 4, JSON.stringify([job.status, job.flow_run_url]), (cell) => {
    const box = el('div', { class: 'actions' });
    if (ACTIVE.has(job.status)) {
      box.append(el('button', { type: 'button', class: 'cancel small danger', dataset: { action: 'cancel' }, text: 'Cancel' }));
    }
    if (job.status === 'failed' || job.status === 'cancelled') {
      box.append(el('button', { type: 'button', class: 'retry small', dataset: { action: 'retry' }, text: 'Retry' }));
    }
    if (job.flow_run_url && /^https?:\/\//i.test(job.flow_run_url)) {
      box.append(el('a', {
        class: 'flow-link', href: job.flow_run_url, target: '_blank', rel: 'noopener noreferrer',
        title: 'this run in the Prefect UI', text: 'Prefect ↗',
      }));
    }
    cell.append(box);
  });
}

export function renderRow(job) {
  let row = state.rows.get(job.id);
  if (!row) {
    row = buildRow(job);
    state.rows.set(job.id, row);
    placeRow(row, job);
  }
  const pct = clampPct(job.progress);
  row.dataset.status = job.status || '';
  row.dataset.documentId = job.document_id || '';
  row.dataset.progress = String(pct);
  row.classList.toggle('selected', state.openDocId && state.openDocId === job.document_id);
  renderDocCell(row, job);
  renderProgressCell(row, job, pct);
  renderStagesCell(row, job);
  renderMessageCell(row, job);
  renderActionsCell(row, job);
  updateJobsMeta();
}

/** Redraws every job's row (once the stage list is known), or the rows of one document (its name changed). */
export function renderRows(documentId = null) {
  if (documentId === null) {
    for (const job of state.jobs.values()) renderRow(job);
    return;
  }
  for (const id of state.rows.keys()) {
    const job = state.jobs.get(id);
    if (job && job.document_id === documentId) renderRow(job);
  }
}
