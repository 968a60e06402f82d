/* Jobs as the page knows them: merged from the list, the live views and the socket; cancel and retry. */

import { api } from './api.js';
import { $ } from './dom.js';
import { ensureDoc } from './docs.js';
import { openDoc } from './docview.js';
import { logChanges, logEvent } from './eventlog.js';
import { clampPct } from './format.js';
import { renderRow, updateJobsMeta } from './jobrows.js';
import { notify } from './notice.js';
import { state, TERMINAL } from './state.js';

function mergeJob(prev, incoming) {
  const job = { ...(prev || {}), ...incoming };
  const poor = !incoming.stages || incoming.stages.length === 0;
  if (prev && poor) {
    // The list endpoint answers from the database only (no stage list, progress 0 until done):
    // keep what a live view already told us while the status has not moved.
    job.stages = prev.stages || [];
    if (prev.status === job.status && !TERMINAL.has(job.status)) {
      job.progress = Math.max(clampPct(prev.progress), clampPct(incoming.progress));
      job.stage = incoming.stage || prev.stage;
      if (prev.message && /^(queued|running)$/i.test(incoming.message || '')) job.message = prev.message;
    }
  }
  if (job.status === 'completed') job.progress = 100;
  return job;
}

export function upsertJob(incoming, { quiet = false } = {}) {
  if (!incoming || !incoming.id) return null;
  const prev = state.jobs.get(incoming.id);
  const job = mergeJob(prev, incoming);
  state.jobs.set(job.id, job);
  if (!quiet) logChanges(prev, job);
  renderRow(job);
  ensureDoc(job.document_id);
  return job;
}

export function removeJob(jobId) {
  state.jobs.delete(jobId);
  const row = state.rows.get(jobId);
  if (row) row.remove();
  state.rows.delete(jobId);
  updateJobsMeta();
}

async function jobAction(jobId, action, button) {
  button.disabled = true;
  const job = state.jobs.get(jobId);
  try {
    const result = await api(`/v1/jobs/${encodeURIComponent(jobId)}/${action}`, { method: 'POST' });
    logEvent(`${action} requested`, { kind: 'system', jobId, documentId: job && job.document_id });
    if (result && typeof result === 'object' && result.id && result.status) upsertJob(result);
    const other = result && typeof result === 'object' && (result.job_id || (result.job && result.job.id));
    if (other && other !== jobId) await refreshJob(other);
    await refreshJob(jobId);
  } catch (err) {
    notify(`${action === 'cancel' ? 'Cancel' : 'Retry'} failed: ${err.message}`);
    button.disabled = false;
  }
}

export async function refreshJob(jobId) {
  const gen = state.generation;
  try {
    const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
    if (gen === state.generation) upsertJob(job);
  } catch (err) {
    if (err.status === 404 && gen === state.generation) removeJob(jobId);
  }
}

export async function loadJobs({ quiet = true } = {}) {
  if (!state.key) return;
  const gen = state.generation;
  try {
    const page = await api('/v1/jobs?limit=50');
    if (gen !== state.generation) return;
    for (const job of [...page.items].reverse()) upsertJob(job, { quiet });
    updateJobsMeta(page.total);
    // The list has no stage detail: ask for it where it matters (active or failed jobs).
    const wanted = page.items.filter((j) => j.status !== 'completed' && !(state.jobs.get(j.id).stages || []).length).slice(0, 12);
    await Promise.all(wanted.map((j) => refreshJob(j.id)));
  } catch (err) {
    if (gen === state.generation) notify(`Could not load jobs: ${err.message}`);
  }
}

export function wireJobs() {
  $('#jobs').addEventListener('click', (e) => {
    const row = e.target.closest('tr[data-job-id]');
    if (!row) return;
    const button = e.target.closest('button[data-action]');
    if (button) {
      e.stopPropagation();
      jobAction(row.dataset.jobId, button.dataset.action, button);
      return;
    }
    if (e.target.closest('a')) return;
    openDoc(row.dataset.documentId);
  });
  $('#jobs-refresh').addEventListener('click', () => loadJobs({ quiet: false }));
}
