/* Uploads: drag-and-drop or the file picker, three at a time, each with its progress and the API's verdict. */

import { detailText } from './api.js';
import { $, el } from './dom.js';
import { rememberDoc } from './docs.js';
import { openDoc } from './docview.js';
import { logEvent } from './eventlog.js';
import { clampPct, fmtBytes, shortId, visible } from './format.js';
import { refreshJob, upsertJob } from './jobs.js';
import { notify } from './notice.js';
import { state } from './state.js';

const UPLOAD_CONCURRENCY = 3;
const queue = [];
let running = 0;

function enqueueUploads(files) {
  if (!files || !files.length) return;
  if (!state.key) {
    notify('Enter your API key first.');
    $('#api-key').focus();
    return;
  }
  for (const file of files) {
    const fill = el('div', { class: 'progress-fill', style: 'width: 0%' });
    const status = el('span', { class: 'up-state', text: 'waiting…' });
    const item = el('li', { class: 'upload up-waiting' },
      el('span', { class: 'up-name', title: visible(file.name), text: visible(file.name) }),
      el('span', { class: 'up-size', text: fmtBytes(file.size) }),
      el('div', { class: 'progress thin' }, fill),
      status);
    const list = $('#uploads');
    list.prepend(item);
    while (list.children.length > 30) list.lastElementChild.remove();
    queue.push({ file, item, fill, status, gen: state.generation });
  }
  pumpUploads();
}

function pumpUploads() {
  while (running < UPLOAD_CONCURRENCY && queue.length) {
    const task = queue.shift();
    running += 1;
    uploadOne(task).finally(() => {
      running -= 1;
      pumpUploads();
    });
  }
}

// XMLHttpRequest, not fetch: only it reports upload progress.
function uploadOne({ file, item, fill, status, gen }) {
  item.className = 'upload up-sending';
  status.textContent = 'uploading…';
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/documents');
    xhr.setRequestHeader('Authorization', `Bearer ${state.key}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) fill.style.width = `${clampPct((100 * e.loaded) / e.total)}%`;
    };
    const fail = (message) => {
      item.className = 'upload up-error';
      status.textContent = message;
      notify(`${visible(file.name)}: ${message}`);
      logEvent(`upload refused: ${message}`, { kind: 'system' });
      resolve();
    };
    xhr.onerror = () => fail('network error');
    xhr.onload = () => {
      fill.style.width = '100%';
      if (xhr.status < 200 || xhr.status >= 300) {
        fail(`${xhr.status}: ${detailText(xhr.status, xhr.statusText, xhr.responseText)}`);
        return;
      }
      let data;
      try { data = JSON.parse(xhr.responseText); } catch (_) { fail('unreadable answer'); return; }
      onUploaded(file, data, { item, status, gen });
      resolve();
    };
    const form = new FormData();
    form.append('file', file, file.name);
    if ($('#redact-input').checked) form.append('redact', 'true');
    if ($('#translate-input').checked) form.append('translate', 'true');
    xhr.send(form);
  });
}

function onUploaded(file, data, { item, status, gen }) {
  if (gen !== state.generation) return;
  if (!state.docs.has(data.document_id)) rememberDoc({ id: data.document_id, title: file.name, filename: file.name });
  const open = el('button', { type: 'button', class: 'ghost small', text: 'open', onclick: () => openDoc(data.document_id) });
  if (data.duplicate) {
    item.className = 'upload up-duplicate';
    status.textContent = 'already uploaded';
    item.append(open);
    logEvent('uploaded again: identical to an existing document', { kind: 'system', documentId: data.document_id });
    return;
  }
  item.className = 'upload up-done';
  status.textContent = `accepted · job #${shortId(data.job_id)}`;
  item.append(open);
  if (data.job_id) {
    upsertJob({
      id: data.job_id, document_id: data.document_id, status: data.status || 'queued', progress: 0,
      message: 'Queued', stages: [], created_at: new Date().toISOString(),
    });
    refreshJob(data.job_id);
  }
}

/** The drop zone's hint and the file picker's filter, from the formats the server takes (GET /v1/formats). */
function showFormats(input) {
  fetch('/v1/formats').then((r) => (r.ok ? r.json() : null)).then((body) => {
    if (!body) return;
    const hint = $('#drop-zone .hint');
    hint.textContent = `${body.formats.map((f) => f.label).join(', ')} — several at once`;
    input.accept = body.formats.flatMap((f) => f.extensions.map((e) => `.${e}`)).join(',');
  }).catch(() => { /* the hint keeps its wording; the server still says what it refuses */ });
}

export function wireUploads() {
  const zone = $('#drop-zone');
  const input = $('#file-input');
  showFormats(input);
  ['dragenter', 'dragover'].forEach((t) => zone.addEventListener(t, (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
    zone.classList.add('over');
  }));
  ['dragleave', 'dragend'].forEach((t) => zone.addEventListener(t, (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove('over');
  }));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    enqueueUploads([...(e.dataTransfer ? e.dataTransfer.files : [])]);
  });
  // A file dropped beside the zone must not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  zone.addEventListener('click', (e) => { if (e.target === zone || !e.target.closest('label, input')) input.click(); });
  zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } });
  input.addEventListener('change', () => {
    enqueueUploads([...input.files]);
    input.value = '';
  });
}
