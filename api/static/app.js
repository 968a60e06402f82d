/* ingestflow dashboard: plain JavaScript, no dependencies, no build step.
 *
 * Every piece of server text reaches the page through textContent / text nodes, never innerHTML.
 * REST calls send `Authorization: Bearer <key>`; the WebSocket passes the key as `?token=`.
 */
(() => {
  'use strict';

  const KEY_STORE = 'ingestflow.apiKey';
  const CONV_STORE = 'ingestflow.conversation'; // + '.' + a hash of the key: one current conversation per user
  const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
  const ACTIVE = new Set(['queued', 'running']);
  // Each kind's stage names in pipeline order and each stage's label, from GET /v1/stages (the pipeline as the
  // server declares it), used when a job has no stage list yet.
  const PLAN = {};
  const STAGE_LABEL = {};
  const STAGE_SHORT = { 'extract-entities': 'entities' };
  const POLL_MS = 2000;
  const MAX_ROWS = 200;
  const MAX_LOG = 400;
  const UPLOAD_CONCURRENCY = 3;
  const STOP_WORDS = new Set(('a an and are as at be by do does for from how in is it of on or that the this to ' +
    'was were what when where which who why with').split(' '));

  const state = {
    key: '',
    generation: 0,            // bumped when the key changes: late answers of an older generation are dropped
    jobs: new Map(),          // job id -> job
    rows: new Map(),          // job id -> <tr>
    docs: new Map(),          // document id -> document (or a stub with title/filename)
    docFetches: new Map(),    // document id -> pending promise
    ws: null,
    wsAttempt: 0,
    wsTimer: null,
    pollTimer: null,
    polling: false,
    docToken: 0,
    openDocId: null,
    uploadQueue: [],
    uploadsRunning: 0,
    chat: { conversationId: null, pending: false, generation: 0 },
    audio: { url: null, documentId: null, token: 0, seek: null },   // the document view's recording
  };

  // ---------------------------------------------------------------- small helpers

  const $ = (sel) => document.querySelector(sel);

  /** el('div', {class: 'x', text: 'y', dataset: {a: 1}, title: 't'}, child, 'text', ...) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = String(value);
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else if (name === 'style') node.style.cssText = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function parseTime(value) {
    if (!value) return null;
    let s = String(value);
    if (!/[zZ]|[+-]\d\d:?\d\d$/.test(s)) s += 'Z'; // naive timestamps from the API are UTC
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  const pad = (n) => String(n).padStart(2, '0');
  const clock = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

  function fmtClock(value) {
    const d = parseTime(value);
    if (!d) return '';
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return sameDay ? clock(d) : `${d.toLocaleDateString()} ${clock(d)}`;
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  }

  /** Seconds as mm:ss (h:mm:ss past an hour). */
  function mmss(seconds) {
    const s = Math.max(0, Math.floor(Number(seconds) || 0));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
  }

  function fmtBytes(n) {
    if (!Number.isFinite(n)) return '';
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
    if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
    return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
  }

  const shortId = (id) => (id ? String(id).slice(0, 8) : '');
  const clampPct = (v) => Math.max(0, Math.min(100, Math.round(Number(v) || 0)));

  // ---------------------------------------------------------------- notices

  let noticeTimer = null;
  function notify(message, kind = 'error') {
    const box = $('#notice');
    clear(box);
    box.className = `notice notice-${kind}`;
    box.append(el('span', { text: message }),
      el('button', { type: 'button', class: 'ghost small', 'aria-label': 'dismiss', text: '✕', onclick: () => { box.hidden = true; } }));
    box.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { box.hidden = true; }, kind === 'error' ? 10000 : 5000);
  }

  // ---------------------------------------------------------------- REST

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  /** The `detail` of a FastAPI error body, readable. */
  function detailText(status, statusText, body) {
    try {
      const data = JSON.parse(body);
      if (typeof data.detail === 'string') return data.detail;
      if (Array.isArray(data.detail)) {
        return data.detail.map((d) => (d.loc ? `${d.loc.filter((p) => p !== 'body').join('.')}: ` : '') + (d.msg || JSON.stringify(d))).join('; ');
      }
      if (data.detail) return JSON.stringify(data.detail);
    } catch (_) { /* not JSON */ }
    const text = (body || '').trim();
    return `${status} ${statusText || ''}`.trim() + (text && text.length < 200 ? `: ${text}` : '');
  }

  async function api(path, { method = 'GET', body, headers } = {}) {
    const h = { Accept: 'application/json, text/plain;q=0.9, */*;q=0.5', ...(headers || {}) };
    if (state.key) h.Authorization = `Bearer ${state.key}`;
    let resp;
    try {
      resp = await fetch(path, { method, body, headers: h, cache: 'no-store' });
    } catch (err) {
      throw new ApiError(0, `network error: ${err.message || err}`);
    }
    if (!resp.ok) {
      const text = await resp.text().catch(() => '');
      if (resp.status === 401) setConn('auth');
      throw new ApiError(resp.status, detailText(resp.status, resp.statusText, text));
    }
    if (resp.status === 204) return null;
    const type = resp.headers.get('content-type') || '';
    return type.includes('json') ? resp.json() : resp.text();
  }

  // ---------------------------------------------------------------- connection indicator

  function setConn(mode) {
    const box = $('#conn');
    const text = {
      live: 'live', polling: 'polling every 2 s', connecting: 'connecting…', off: 'no key', auth: 'key refused',
    }[mode] || mode;
    box.className = `conn conn-${mode}`;
    box.title = {
      live: 'live updates over the WebSocket',
      polling: 'the WebSocket is unavailable: polling the jobs list while reconnecting',
      auth: 'the API answered 401: check the key',
    }[mode] || '';
    box.querySelector('.conn-text').textContent = text;
  }

  // ---------------------------------------------------------------- event log

  function logEvent(text, { kind = 'job', jobId, documentId, status } = {}) {
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

  function logChanges(prev, job) {
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

  // ---------------------------------------------------------------- documents (names for rows)

  function docName(documentId) {
    const doc = state.docs.get(documentId);
    if (!doc) return shortId(documentId);
    return doc.title || doc.filename || shortId(documentId);
  }

  function rememberDoc(doc) {
    if (!doc || !doc.id) return;
    const had = state.docs.get(doc.id);
    state.docs.set(doc.id, { ...(had || {}), ...doc });
    if (!had || had.title !== doc.title || had.filename !== doc.filename) refreshDocCells(doc.id);
  }

  function ensureDoc(documentId) {
    if (!documentId || state.docs.has(documentId) || state.docFetches.has(documentId)) return;
    const gen = state.generation;
    const p = api(`/v1/documents/${encodeURIComponent(documentId)}`)
      .then((doc) => { if (gen === state.generation) rememberDoc(doc); })
      .catch((err) => {
        if (gen === state.generation && err.status === 404) rememberDoc({ id: documentId, title: '(deleted document)', missing: true });
      })
      .finally(() => state.docFetches.delete(documentId));
    state.docFetches.set(documentId, p);
  }

  function refreshDocCells(documentId) {
    for (const [id, row] of state.rows) {
      const job = state.jobs.get(id);
      if (job && job.document_id === documentId) renderRow(job);
    }
  }

  // ---------------------------------------------------------------- jobs

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

  function upsertJob(incoming, { quiet = false } = {}) {
    if (!incoming || !incoming.id) return null;
    const prev = state.jobs.get(incoming.id);
    const job = mergeJob(prev, incoming);
    state.jobs.set(job.id, job);
    if (!quiet) logChanges(prev, job);
    renderRow(job);
    ensureDoc(job.document_id);
    return job;
  }

  function removeJob(jobId) {
    state.jobs.delete(jobId);
    const row = state.rows.get(jobId);
    if (row) row.remove();
    state.rows.delete(jobId);
    updateJobsMeta();
  }

  function updateJobsMeta(total) {
    const n = state.rows.size;
    $('#jobs-empty').hidden = n > 0;
    const active = [...state.jobs.values()].filter((j) => ACTIVE.has(j.status)).length;
    const parts = [`${n} shown`];
    if (Number.isFinite(total) && total > n) parts[0] = `${n} of ${total}`;
    if (active) parts.push(`${active} active`);
    $('#jobs-count').textContent = parts.join(' · ');
  }

  /** The per-stage list, or one inferred from the kind's plan when the API has not given one yet. */
  function stagesOf(job) {
    if (job.stages && job.stages.length) return { stages: job.stages, inferred: false };
    const plan = PLAN[job.kind];
    if (!plan) return { stages: [], inferred: true };
    let current = false;
    const stages = plan.map((name) => {
      let stateName = 'pending';
      if (job.status === 'completed') stateName = 'completed';
      else if (job.status === 'running' && !current && job.stage === STAGE_LABEL[name]) {
        stateName = 'running';
        current = true;
      } else if (job.status === 'failed' || job.status === 'cancelled') stateName = 'unknown';
      return { name, stage: STAGE_LABEL[name], state: stateName, attempts: 0 };
    });
    return { stages, inferred: true };
  }

  function stageTitle(s) {
    const parts = [`${s.name} (${s.stage || STAGE_LABEL[s.name] || ''}): ${s.state}`];
    if (s.attempts) parts.push(`attempts: ${s.attempts}`);
    const a = parseTime(s.started_at);
    const b = parseTime(s.finished_at);
    if (a) parts.push(`started ${clock(a)}`);
    if (a && b) parts.push(`took ${fmtDuration((b - a) / 1000)}`);
    const m = s.metrics;
    if (m) parts.push(`wall ${m.wall_s.toFixed(2)} s · CPU ${m.cpu_s.toFixed(2)} s · waited ${m.wait_s.toFixed(2)} s`);
    if (m && m.model) parts.push(`model: ${m.model}`);
    if (s.error) parts.push(`error: ${s.error}`);
    return parts.join(' · ');
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

  function renderRow(job) {
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

    const doc = state.docs.get(job.document_id);
    renderCell(row, 0, JSON.stringify([docName(job.document_id), doc && doc.filename, job.kind, job.created_at]), (cell) => {
      cell.append(
        el('div', { class: 'doc-name', title: doc && doc.filename ? doc.filename : job.document_id, text: docName(job.document_id) }),
        el('div', { class: 'sub' },
          job.kind ? el('span', { class: `kind kind-${job.kind}`, text: job.kind }) : null,
          job.created_at ? el('span', { class: 'when', text: fmtClock(job.created_at) }) : null,
          el('span', { class: 'jid', title: `job ${job.id}`, text: `#${shortId(job.id)}` })));
    });

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

    const { stages, inferred } = stagesOf(job);
    renderCell(row, 2, JSON.stringify([stages, inferred]), (cell) => {
      const box = el('div', { class: `stages${inferred ? ' inferred' : ''}` });
      for (const s of stages) {
        const label = STAGE_SHORT[s.name] || s.name;
        box.append(el('span', {
          class: `stage-badge state-${s.state}`, title: stageTitle(s), dataset: { stage: s.name, state: s.state },
        }, label, s.attempts > 1 ? el('span', { class: 'attempts', text: `×${s.attempts}` }) : null));
      }
      cell.append(box);
    });

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

  async function refreshJob(jobId) {
    const gen = state.generation;
    try {
      const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
      if (gen === state.generation) upsertJob(job);
    } catch (err) {
      if (err.status === 404 && gen === state.generation) removeJob(jobId);
    }
  }

  async function loadJobs({ quiet = true } = {}) {
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

  async function loadDocNames() {
    const gen = state.generation;
    try {
      const page = await api('/v1/documents?limit=200');
      if (gen === state.generation) page.items.forEach(rememberDoc);
    } catch (_) { /* names are fetched one by one later */ }
  }

  // ---------------------------------------------------------------- live updates: WebSocket, polling fallback

  function connect() {
    clearTimeout(state.wsTimer);
    if (!state.key) return;
    const gen = state.generation;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/v1/ws/jobs?token=${encodeURIComponent(state.key)}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_) {
      startPolling();
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    if (!state.polling) setConn('connecting');
    ws.onopen = () => {
      if (gen !== state.generation) { ws.close(); return; }
      state.wsAttempt = 0;
      stopPolling();
      setConn('live');
    };
    ws.onmessage = (ev) => {
      if (gen !== state.generation) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg.type === 'job' && msg.job) upsertJob(msg.job);
      else if (msg.type === 'deleted' && msg.job_id) removeJob(msg.job_id);
    };
    ws.onclose = () => {
      if (gen !== state.generation) return;
      state.ws = null;
      startPolling();
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    clearTimeout(state.wsTimer);
    const base = Math.min(30000, 1000 * 2 ** state.wsAttempt);
    state.wsAttempt = Math.min(state.wsAttempt + 1, 10);
    state.wsTimer = setTimeout(connect, base * (0.75 + Math.random() * 0.5));
  }

  function startPolling() {
    if (state.polling) return;
    state.polling = true;
    setConn('polling');
    const tick = async () => {
      if (!state.polling) return;
      await pollOnce();
      if (state.polling) state.pollTimer = setTimeout(tick, POLL_MS);
    };
    state.pollTimer = setTimeout(tick, 0);
  }

  function stopPolling() {
    state.polling = false;
    clearTimeout(state.pollTimer);
  }

  async function pollOnce() {
    const gen = state.generation;
    let page;
    try {
      page = await api('/v1/jobs?limit=50');
    } catch (_) {
      return;
    }
    if (gen !== state.generation) return;
    const needDetail = [];
    for (const item of page.items) {
      const prev = state.jobs.get(item.id);
      if (ACTIVE.has(item.status) || (prev && prev.status !== item.status)) needDetail.push(item.id);
      else upsertJob(item);
    }
    updateJobsMeta(page.total);
    // The live view (stages, progress) of the jobs that move, a few at a time.
    await Promise.all(needDetail.slice(0, 10).map(async (id) => {
      try {
        const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
        if (gen === state.generation) upsertJob(job);
      } catch (_) {
        const item = page.items.find((j) => j.id === id);
        if (item && gen === state.generation) upsertJob(item);
      }
    }));
    for (const id of needDetail.slice(10)) upsertJob(page.items.find((j) => j.id === id));
  }

  // ---------------------------------------------------------------- key

  function restart() {
    state.generation += 1;
    if (state.ws) { try { state.ws.close(); } catch (_) { /* closing anyway */ } }
    state.ws = null;
    state.wsAttempt = 0;
    clearTimeout(state.wsTimer);
    stopPolling();
    state.jobs.clear();
    state.rows.clear();
    state.docs.clear();
    state.docFetches.clear();
    clear($('#jobs'));
    updateJobsMeta();
    closeDoc();
    resetChat();
    if (!state.key) {
      setConn('off');
      return;
    }
    setConn('connecting');
    const gen = state.generation;
    connect(); // at once: the socket's first messages and the list fill merge by job id
    loadDocNames().then(() => { if (gen === state.generation) loadJobs(); });
  }

  function setKey(key) {
    state.key = (key || '').trim();
    try {
      if (state.key) localStorage.setItem(KEY_STORE, state.key);
      else localStorage.removeItem(KEY_STORE);
    } catch (_) { /* storage disabled: the key lives for this page only */ }
    restart();
  }

  // ---------------------------------------------------------------- uploads

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
        el('span', { class: 'up-name', title: file.name, text: file.name }),
        el('span', { class: 'up-size', text: fmtBytes(file.size) }),
        el('div', { class: 'progress thin' }, fill),
        status);
      const list = $('#uploads');
      list.prepend(item);
      while (list.children.length > 30) list.lastElementChild.remove();
      state.uploadQueue.push({ file, item, fill, status, gen: state.generation });
    }
    pumpUploads();
  }

  function pumpUploads() {
    while (state.uploadsRunning < UPLOAD_CONCURRENCY && state.uploadQueue.length) {
      const task = state.uploadQueue.shift();
      state.uploadsRunning += 1;
      uploadOne(task).finally(() => {
        state.uploadsRunning -= 1;
        pumpUploads();
      });
    }
  }

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
        notify(`${file.name}: ${message}`);
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

  // ---------------------------------------------------------------- highlighting

  function escapeRe(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }

  /** A regular expression matching the query's words in a text (prefix match for longer words), or null. */
  function queryRegex(query) {
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
  function appendHighlighted(parent, text, re) {
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

  /** Chunk text as a reader sees it: markdown links, emphasis and fences reduced to their words. */
  function plain(text) {
    return String(text || '')
      .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/```+|`/g, '')
      .replace(/(\*\*|__)(.+?)\1/g, '$2')
      .replace(/^\s*#{1,6}\s+/gm, '')
      .replace(/\s+/g, ' ')
      .trim();
  }

  /** About `size` characters of text around the first match. */
  function snippet(text, re, size = 360) {
    const flat = plain(text);
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

  // ---------------------------------------------------------------- minimal, safe markdown

  const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*|__[^_\n]+__)|(\*[^*\s][^*\n]*\*)|(!?\[[^\]\n]*\]\([^)\s]+(?:\s+"[^"]*")?\))/g;

  function renderInline(parent, text, re) {
    let last = 0;
    INLINE.lastIndex = 0;
    let m;
    while ((m = INLINE.exec(text)) !== null) {
      if (m.index > last) appendHighlighted(parent, unescapeMd(text.slice(last, m.index)), re);
      const tok = m[0];
      if (m[1]) {
        parent.append(el('code', { text: tok.slice(1, -1) }));
      } else if (m[2]) {
        const strong = el('strong');
        appendHighlighted(strong, unescapeMd(tok.slice(2, -2)), re);
        parent.append(strong);
      } else if (m[3]) {
        const em = el('em');
        appendHighlighted(em, unescapeMd(tok.slice(1, -1)), re);
        parent.append(em);
      } else if (m[4]) {
        const lm = /^(!?)\[([^\]]*)\]\(([^)\s]+)/.exec(tok);
        const label = lm[2] || lm[3];
        if (lm[1]) {
          parent.append(el('span', { class: 'md-image', text: `[image${lm[2] ? `: ${lm[2]}` : ''}]` }));
        } else if (/^https?:\/\//i.test(lm[3])) {
          const a = el('a', { href: lm[3], target: '_blank', rel: 'noopener noreferrer nofollow' });
          appendHighlighted(a, unescapeMd(label), re);
          parent.append(a);
        } else {
          appendHighlighted(parent, unescapeMd(label), re);
        }
      }
      last = m.index + tok.length;
    }
    if (last < text.length) appendHighlighted(parent, unescapeMd(text.slice(last)), re);
  }

  function unescapeMd(s) {
    return s.replace(/\\([\\`*_{}[\]()#+\-.!|>~])/g, '$1')
      .replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'");
  }

  function splitRow(line) {
    let s = line.trim();
    if (s.startsWith('|')) s = s.slice(1);
    if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
    return s.split(/(?<!\\)\|/).map((c) => c.trim());
  }

  /** Markdown to DOM nodes: headings, paragraphs, lists, quotes, code, tables; everything else as text. */
  function renderMarkdown(md, re) {
    const frag = document.createDocumentFragment();
    const lines = String(md || '').replace(/\r\n?/g, '\n').split('\n');
    let para = [];
    let list = null;
    const flushPara = () => {
      if (para.length) {
        const p = el('p', { class: 'md-block' });
        renderInline(p, para.join(' '), re);
        frag.append(p);
      }
      para = [];
    };
    const flushList = () => { list = null; };
    for (let i = 0; i < lines.length; i += 1) {
      const line = lines[i];
      const trimmed = line.trim();
      let m;
      if (/^(```|~~~)/.test(trimmed)) {
        flushPara(); flushList();
        const fence = trimmed.slice(0, 3);
        const body = [];
        for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence); i += 1) body.push(lines[i]);
        frag.append(el('pre', { class: 'md-block md-code' }, el('code', { text: body.join('\n') })));
        continue;
      }
      if (!trimmed) { flushPara(); flushList(); continue; }
      if (/^<!--.*-->$/.test(trimmed)) {
        flushPara(); flushList();
        const inner = trimmed.slice(4, -3).trim();
        if (inner) frag.append(el('div', { class: 'md-block md-note', text: `[${inner}]` }));
        continue;
      }
      if ((m = /^(#{1,6})\s+(.*?)\s*#*$/.exec(trimmed))) {
        flushPara(); flushList();
        const level = Math.min(6, m[1].length + 2);
        const h = el(`h${level}`, { class: 'md-block md-h' });
        renderInline(h, m[2], re);
        frag.append(h);
        continue;
      }
      if (/^([-*_])(\s*\1){2,}$/.test(trimmed)) { flushPara(); flushList(); frag.append(el('hr')); continue; }
      if (trimmed.startsWith('|')) {
        flushPara(); flushList();
        const rows = [];
        for (; i < lines.length && lines[i].trim().startsWith('|'); i += 1) rows.push(lines[i]);
        i -= 1;
        const table = el('table', { class: 'md-block md-table' });
        let header = true;
        const hasSep = rows.length > 1 && /^\|?[\s:|-]+\|?$/.test(rows[1].trim()) && rows[1].includes('-');
        rows.forEach((r, idx) => {
          if (hasSep && idx === 1) return;
          const tr = el('tr');
          for (const c of splitRow(r)) {
            const cell = el(header && hasSep ? 'th' : 'td');
            renderInline(cell, c, re);
            tr.append(cell);
          }
          table.append(tr);
          header = false;
        });
        frag.append(el('div', { class: 'md-table-wrap' }, table));
        continue;
      }
      if ((m = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/.exec(line))) {
        flushPara();
        const ordered = /\d/.test(m[2]);
        if (!list || list.ordered !== ordered) {
          list = { ordered, node: el(ordered ? 'ol' : 'ul', { class: 'md-block md-list' }) };
          frag.append(list.node);
        }
        const li = el('li', { class: m[1].length >= 2 ? 'md-indent' : null });
        renderInline(li, m[3], re);
        list.node.append(li);
        continue;
      }
      if (trimmed.startsWith('>')) {
        flushPara(); flushList();
        const q = el('blockquote', { class: 'md-block' });
        renderInline(q, trimmed.replace(/^>\s?/, ''), re);
        frag.append(q);
        continue;
      }
      if (list && /^\s{2,}\S/.test(line)) { // a list item's continuation line
        list.node.lastElementChild.append(' ');
        renderInline(list.node.lastElementChild, trimmed, re);
        continue;
      }
      flushList();
      para.push(trimmed);
    }
    flushPara();
    return frag;
  }

  // ---------------------------------------------------------------- audio player (recordings in the document view)

  /** The original file as a Blob (the route needs the Authorization header, so no plain <audio src>). */
  async function apiBlob(path) {
    const h = {};
    if (state.key) h.Authorization = `Bearer ${state.key}`;
    let resp;
    try {
      resp = await fetch(path, { headers: h, cache: 'no-store' });
    } catch (err) {
      throw new ApiError(0, `network error: ${err.message || err}`);
    }
    if (!resp.ok) {
      const text = await resp.text().catch(() => '');
      throw new ApiError(resp.status, detailText(resp.status, resp.statusText, text));
    }
    return resp.blob();
  }

  function playerStatus(text, kind = '') {
    const box = $('#doc-player-status');
    box.textContent = text || '';
    box.className = `player-status ${kind === 'error' ? 'error-text' : 'muted'}`;
  }

  /** Stops the player and frees its object URL (on close, and when another document opens). */
  function releaseAudio() {
    const audio = $('#doc-audio');
    audio.pause();
    audio.removeAttribute('src');
    audio.load();
    if (state.audio.url) URL.revokeObjectURL(state.audio.url);
    state.audio = { url: null, documentId: null, token: state.audio.token + 1, seek: null };
    const player = $('#doc-player');
    player.hidden = true;
    player.dataset.state = 'empty';
    playerStatus('');
  }

  /** Loads the recording into the player (kept when the same recording is opened again). */
  async function loadAudio(doc) {
    const player = $('#doc-player');
    if (state.audio.documentId === doc.id && (state.audio.url || state.audio.loading)) return;
    if (state.audio.documentId !== doc.id) releaseAudio();
    player.hidden = false;
    const token = state.audio.token;
    state.audio.documentId = doc.id;
    state.audio.loading = true;
    player.dataset.state = 'loading';
    playerStatus(`loading the recording${doc.size_bytes ? ` (${fmtBytes(doc.size_bytes)})` : ''}…`);
    let blob;
    try {
      blob = await apiBlob(`/v1/documents/${encodeURIComponent(doc.id)}/file`);
    } catch (err) {
      if (token !== state.audio.token) return;
      state.audio.loading = false;
      player.dataset.state = 'error';
      playerStatus(`Could not load the recording: ${err.message}`, 'error');
      return;
    }
    if (token !== state.audio.token) return; // closed or replaced meanwhile
    state.audio.loading = false;
    state.audio.url = URL.createObjectURL(blob);
    state.audio.type = doc.mime_type || doc.format || '';
    playerStatus('');
    $('#doc-audio').src = state.audio.url;
  }

  function onAudioReady() {
    const audio = $('#doc-audio');
    if (!state.audio.url || audio.src !== state.audio.url) return;
    $('#doc-player').dataset.state = 'ready';
    if (state.audio.seek !== null) {
      const { at, play } = state.audio.seek;
      state.audio.seek = null;
      seekAudio(at, play);
    }
  }

  function onAudioError() {
    const audio = $('#doc-audio');
    if (!state.audio.url || audio.src !== state.audio.url) return; // the src was just removed
    $('#doc-player').dataset.state = 'error';
    playerStatus(`This browser cannot play the recording${state.audio.type ? ` (${state.audio.type})` : ''}.`, 'error');
  }

  /** Puts the player at a second (once the recording is loaded, if it is not yet). */
  function seekAudio(seconds, play = false) {
    if (!Number.isFinite(seconds)) return;
    const audio = $('#doc-audio');
    const player = $('#doc-player');
    if (player.dataset.state !== 'ready') {
      state.audio.seek = { at: seconds, play };
      return;
    }
    const at = Number.isFinite(audio.duration) ? Math.min(seconds, Math.max(0, audio.duration - 0.05)) : seconds;
    audio.currentTime = Math.max(0, at);
    player.dataset.seek = String(seconds);
    if (play) audio.play().catch(() => { /* autoplay refused: the position is set, the user presses play */ });
  }

  /** While the recording plays, the line being spoken is marked (and kept in view). */
  function followAudio() {
    const audio = $('#doc-audio');
    const container = $('#doc-text');
    const t = audio.currentTime;
    let current = null;
    for (const seg of container.querySelectorAll('.seg')) {
      const on = Number(seg.dataset.start) <= t && t < Number(seg.dataset.end);
      seg.classList.toggle('playing', on);
      if (on && !current) current = seg;
    }
    if (current && !audio.paused) {
      const box = container.getBoundingClientRect();
      const r = current.getBoundingClientRect();
      if (r.top < box.top || r.bottom > box.bottom) scrollWithin(container, current);
    }
  }

  // ---------------------------------------------------------------- document view

  function closeDoc() {
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
    add('File', doc.filename);
    add('Kind', `${doc.kind}${doc.format ? ` · ${doc.format}` : ''}${doc.language ? ` · ${doc.language}` : ''}`);
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
    if (doc.last_error) add('Last error', el('span', { class: 'job-error', text: doc.last_error }));
    meta.append(dl);
  }

  async function openDoc(documentId, focus = null) {
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
    $('#doc-title').textContent = doc.title || doc.filename || shortId(doc.id);
    renderDocMeta(doc);
    view._doc = doc;
    view._focus = focus;
    if (doc.kind === 'audio') {
      $('#doc-tools').hidden = false;
      loadAudio(doc); // in parallel with the transcript
      if (focus && Number.isFinite(focus.start_s)) seekAudio(focus.start_s);
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
      if (token !== state.docToken) return;
      clear(text);
      text.append(el('p', { class: err.status === 409 ? 'muted' : 'error-text', text: err.status === 409 ? `Not available yet: ${err.message}.` : `Could not load the text: ${err.message}` }));
      view.dataset.state = 'unavailable';
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

  function scrollWithin(container, node) {
    const top = node.getBoundingClientRect().top - container.getBoundingClientRect().top + container.scrollTop;
    container.scrollTop = Math.max(0, top - 24);
  }

  async function loadTranscript(doc, version, focus, token) {
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
        if (token !== state.docToken) return;
        clear(text);
        text.append(el('p', { class: err.status === 409 ? 'muted' : 'error-text', text: err.status === 409 ? `Not available yet: ${err.message}.` : `Could not load the transcript: ${err.message}` }));
        view.dataset.state = 'unavailable';
        return;
      }
    }
    if (token !== state.docToken) return;
    clear(text);
    if (note) text.append(el('p', { class: 'muted', text: note }));
    const head = [];
    if (data.language) head.push(`language: ${data.language}`);
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

  // ---------------------------------------------------------------- search

  function citation(hit) {
    if (Number.isFinite(hit.start_s)) {
      return Number.isFinite(hit.end_s) ? `${mmss(hit.start_s)}–${mmss(hit.end_s)}` : mmss(hit.start_s);
    }
    if (Number.isFinite(hit.page)) {
      return Number.isFinite(hit.page_end) && hit.page_end !== hit.page ? `pp. ${hit.page}–${hit.page_end}` : `p. ${hit.page}`;
    }
    return '';
  }

  let searchToken = 0;
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
    for (const hit of hits) {
      const focus = { text: hit.text, start_s: hit.start_s, end_s: hit.end_s, page: hit.page, page_end: hit.page_end, query: q };
      const cite = citation(hit);
      const body = el('p', { class: 'hit-text' });
      appendHighlighted(body, snippet(hit.text, re), re);
      const item = el('li', { class: 'hit', tabindex: 0, dataset: { documentId: hit.document_id, chunkId: hit.chunk_id } },
        el('div', { class: 'hit-head' },
          el('span', { class: 'hit-title', text: hit.title || docName(hit.document_id) }),
          cite ? el('span', { class: `cite ${Number.isFinite(hit.start_s) ? 'cite-time' : 'cite-page'}`, text: cite }) : null,
          el('span', { class: `kind kind-${hit.kind}`, text: hit.kind }),
          el('span', { class: 'score', title: 'similarity score', text: Number(hit.score).toFixed(3) })),
        hit.headings && hit.headings.length ? el('div', { class: 'hit-path', text: hit.headings.join(' › ') }) : null,
        body);
      const open = () => openDoc(hit.document_id, focus);
      item.addEventListener('click', open);
      item.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
      results.append(item);
    }
  }

  // ---------------------------------------------------------------- chat

  /** FNV-1a of the key: each key (each user) keeps its own current conversation, without storing the key again. */
  function keyTag(key) {
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i += 1) {
      h ^= key.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h.toString(16).padStart(8, '0');
  }

  const convStoreKey = () => `${CONV_STORE}.${keyTag(state.key)}`;

  function storedConversation() {
    if (!state.key) return null;
    try { return localStorage.getItem(convStoreKey()) || null; } catch (_) { return null; }
  }

  function setConversation(id) {
    state.chat.conversationId = id || null;
    $('#chat').dataset.conversationId = id || '';
    if (!state.key) return;
    try {
      if (id) localStorage.setItem(convStoreKey(), id);
      else localStorage.removeItem(convStoreKey());
    } catch (_) { /* storage disabled: the conversation lasts as long as the page */ }
    const select = $('#chat-history');
    if ([...select.options].some((o) => o.value === (id || ''))) select.value = id || '';
  }

  /** Where a source sits: "p. 3", "pp. 3–4", "01:05–01:32". */
  const whereOf = citation;

  function chatEmpty() {
    const log = $('#chat-log');
    clear(log);
    log.append(el('p', { class: 'chat-empty muted', text: 'Ask a question about your documents and recordings. '
      + 'Answers cite their sources: click one to open the page or the second of audio it comes from.' }));
  }

  function scrollChat() {
    const log = $('#chat-log');
    log.scrollTop = log.scrollHeight;
  }

  function openSource(source, question, node, sentence = '') {
    for (const other of document.querySelectorAll('#chat-log .source.opened')) other.classList.remove('opened');
    if (node) node.classList.add('opened');
    openDoc(source.document_id, {
      text: source.text, start_s: source.start_s, end_s: source.end_s, page: source.page, page_end: source.page_end, query: null,
      from: 'chat', question, sentence,
    });
  }

  function sourceTitle(source) {
    return source.title || docName(source.document_id);
  }

  /** The answer as text, its [n] markers (and [1, 2]) as links to the sources they name. */
  function renderAnswerText(parent, answer, byN, question, turnKey) {
    const MARKER = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;
    const text = String(answer || '');
    let last = 0;
    let previous = '';
    let m;
    while ((m = MARKER.exec(text)) !== null) {
      const nums = m[1].split(/\s*[,;]\s*/).map(Number);
      if (!nums.every((n) => byN.has(n))) continue; // not a citation of a listed source: stays text
      const sentence = text.slice(last, m.index).trim() || previous; // "… [1][2]": both cite the same words
      previous = sentence;
      if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
      const group = el('span', { class: 'cites' });
      for (const n of nums) {
        const source = byN.get(n);
        const where = whereOf(source);
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
      parent.append(group);
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  function sourceItem(source, question, re, turnKey) {
    const where = whereOf(source);
    const timed = Number.isFinite(source.start_s);
    const body = el('span', { class: 'source-text' });
    appendHighlighted(body, snippet(source.text, re, 220), re);
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

  /** An assistant turn: the answer with its markers, the cited sources, the other retrieved passages folded. */
  function renderAssistant(node, data, question) {
    clear(node);
    node.className = 'turn turn-assistant';
    if (data.turn_id) node.dataset.turnId = data.turn_id;
    const sources = (Array.isArray(data.sources) ? data.sources : []).filter((s) => s && Number.isFinite(Number(s.n)));
    const byN = new Map(sources.map((s) => [Number(s.n), s]));
    const turnKey = `t${data.turn_id ? String(data.turn_id).replace(/[^\w-]/g, '') : Math.random().toString(36).slice(2)}`;
    const answer = el('div', { class: 'turn-text answer' });
    renderAnswerText(answer, data.answer, byN, question, turnKey);
    node.append(el('div', { class: 'turn-role', text: 'Answer' }), answer);

    // Cited: flagged by the API, or named by a marker in the answer (stored turns of older versions).
    const named = new Set();
    for (const m of String(data.answer || '').matchAll(/\[(\d+(?:\s*[,;]\s*\d+)*)\]/g)) {
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

  function userTurn(text) {
    return el('div', { class: 'turn turn-user' }, el('div', { class: 'turn-role', text: 'You' }), el('div', { class: 'turn-text', text }));
  }

  function setChatBusy(busy) {
    state.chat.pending = busy;
    $('#chat-send').disabled = busy;
    $('#chat').classList.toggle('busy', busy);
  }

  async function sendChat(query) {
    const q = String(query || '').trim();
    if (!q || state.chat.pending) return;
    if (!state.key) { notify('Enter your API key first.'); $('#api-key').focus(); return; }
    const log = $('#chat-log');
    const empty = log.querySelector('.chat-empty');
    if (empty) empty.remove();
    const asked = userTurn(q);
    const answer = el('div', { class: 'turn turn-assistant pending', 'aria-busy': 'true' },
      el('div', { class: 'turn-role', text: 'Answer' }), el('div', { class: 'turn-text muted' }, 'Searching your documents', el('span', { class: 'dots' })));
    log.append(asked, answer);
    scrollChat();
    setChatBusy(true);
    const gen = state.generation;
    const chatGen = state.chat.generation;
    const body = { query: q };
    if (state.chat.conversationId) body.conversation_id = state.chat.conversationId;
    let data;
    try {
      data = await api('/v1/chat', { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
    } catch (err) {
      if (gen !== state.generation || chatGen !== state.chat.generation) return;
      setChatBusy(false);
      let message = `Could not answer: ${err.message}`;
      if (err.status === 404 && body.conversation_id) {
        setConversation(null); // deleted, or another key's: the next question starts a new one
        message = 'This conversation no longer exists; asking again starts a new one.';
      }
      asked.classList.add('failed');
      clear(answer);
      answer.className = 'turn turn-assistant turn-error';
      answer.removeAttribute('aria-busy');
      answer.append(el('div', { class: 'turn-role', text: 'Answer' }), el('div', { class: 'turn-text error-text', text: message }),
        el('button', {
          type: 'button', class: 'retry small', text: 'Ask again',
          onclick: () => { asked.remove(); answer.remove(); sendChat(q); },
        }));
      scrollChat();
      return;
    }
    if (gen !== state.generation || chatGen !== state.chat.generation) return;
    setChatBusy(false);
    answer.removeAttribute('aria-busy');
    if (data.question_turn_id) asked.dataset.turnId = data.question_turn_id;
    const isNew = data.conversation_id && data.conversation_id !== state.chat.conversationId;
    setConversation(data.conversation_id);
    renderAssistant(answer, data, q);
    const log2 = $('#chat-log');
    log2.scrollTop += asked.getBoundingClientRect().top - log2.getBoundingClientRect().top - 6;
    if (isNew) loadConversationList();
  }

  /** Shows a stored conversation's turns (on reload, on a key change, or picked from the list). */
  async function restoreConversation(id) {
    state.chat.generation += 1;
    const chatGen = state.chat.generation;
    setChatBusy(false);
    const log = $('#chat-log');
    setConversation(id);
    if (!id) { chatEmpty(); return; }
    clear(log);
    log.append(el('p', { class: 'chat-empty muted', text: 'Loading the conversation…' }));
    $('#chat').dataset.state = 'loading';
    setChatBusy(true); // a question sent now would land in a log about to be replaced
    let conv;
    try {
      conv = await api(`/v1/conversations/${encodeURIComponent(id)}`);
    } catch (err) {
      if (chatGen !== state.chat.generation) return;
      setChatBusy(false);
      $('#chat').dataset.state = 'error';
      if (err.status === 404) {
        setConversation(null);
        chatEmpty();
      } else {
        clear(log);
        log.append(el('p', { class: 'chat-empty error-text', text: `Could not load the conversation: ${err.message}` }));
      }
      return;
    }
    if (chatGen !== state.chat.generation) return;
    setChatBusy(false);
    clear(log);
    let question = '';
    for (const turn of conv.turns || []) {
      if (turn.role === 'user') {
        question = turn.text;
        log.append(Object.assign(userTurn(turn.text), { title: fmtClock(turn.created_at) }));
      } else {
        const node = el('div', { class: 'turn turn-assistant' });
        renderAssistant(node, { answer: turn.text, sources: turn.sources, turn_id: turn.id }, question);
        log.append(node);
      }
    }
    if (!log.children.length) chatEmpty();
    $('#chat').dataset.state = 'loaded';
    scrollChat();
  }

  function newConversation() {
    state.chat.generation += 1; // an answer still on its way belongs to the old conversation
    setChatBusy(false);
    setConversation(null);
    $('#chat').dataset.state = 'new';
    chatEmpty();
    $('#chat-input').focus();
  }

  async function loadConversationList() {
    if (!state.key) return;
    const gen = state.generation;
    let page;
    try {
      page = await api('/v1/conversations?limit=30');
    } catch (_) {
      return; // the list is a convenience; the current conversation still works
    }
    if (gen !== state.generation) return;
    const select = $('#chat-history');
    clear(select);
    select.append(el('option', { value: '', text: page.items.length ? 'Earlier conversations…' : 'No earlier conversations' }));
    for (const conv of page.items) {
      const title = conv.title.length > 60 ? `${conv.title.slice(0, 57)}…` : conv.title;
      select.append(el('option', { value: conv.id, text: `${title || '(untitled)'} · ${fmtClock(conv.updated_at)}` }));
    }
    select.value = [...select.options].some((o) => o.value === state.chat.conversationId) ? state.chat.conversationId : '';
    select.disabled = !page.items.length;
  }

  function resetChat() {
    const select = $('#chat-history');
    clear(select);
    select.append(el('option', { value: '', text: 'Earlier conversations…' }));
    select.disabled = true;
    if (!state.key) {
      state.chat.generation += 1;
      setChatBusy(false);
      state.chat.conversationId = null;
      chatEmpty();
      return;
    }
    restoreConversation(storedConversation());
    loadConversationList();
  }

  // ---------------------------------------------------------------- wiring

  /** The pipeline as the server declares it (GET /v1/stages): plans per kind and stage labels. */
  function loadStages() {
    return fetch('/v1/stages').then((r) => (r.ok ? r.json() : null)).then((body) => {
      if (!body) return;
      for (const s of body.stages) STAGE_LABEL[s.name] = s.label;
      Object.assign(PLAN, body.plans);
      for (const job of state.jobs.values()) renderRow(job);
    }).catch(() => { /* the badges fill in from each job's own stage list */ });
  }

  function init() {
    loadStages();
    let saved = '';
    try { saved = localStorage.getItem(KEY_STORE) || ''; } catch (_) { /* no storage */ }
    const keyInput = $('#api-key');
    keyInput.value = saved;
    $('#key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      setKey(keyInput.value);
      if (state.key) notify('Key saved in this browser.', 'info');
    });
    $('#key-toggle').addEventListener('click', (e) => {
      const show = keyInput.type === 'password';
      keyInput.type = show ? 'text' : 'password';
      e.currentTarget.textContent = show ? 'hide' : 'show';
    });

    const zone = $('#drop-zone');
    const input = $('#file-input');
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
    $('#log-clear').addEventListener('click', () => clear($('#event-log')));
    $('#doc-close').addEventListener('click', closeDoc);
    $('#doc-version').addEventListener('change', () => {
      const view = $('#doc-view');
      if (view._doc && view._doc.kind === 'audio') loadTranscript(view._doc, $('#doc-version').value, view._focus, state.docToken);
    });
    $('#doc-text').addEventListener('click', (e) => {
      const ts = e.target.closest('button.ts');
      if (!ts) return;
      const seg = ts.closest('.seg');
      const at = Number(seg.dataset.start);
      selectTime(at, NaN);
      seekAudio(at, true);
    });
    $('#search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      runSearch($('#search-input').value);
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !$('#doc-view').hidden) closeDoc();
    });
    $('#doc-audio').addEventListener('loadedmetadata', onAudioReady);
    $('#doc-audio').addEventListener('error', onAudioError);
    $('#doc-audio').addEventListener('timeupdate', followAudio);
    $('#doc-audio').addEventListener('seeked', followAudio);

    const chatInput = $('#chat-input');
    $('#chat-form').addEventListener('submit', (e) => {
      e.preventDefault();
      if (state.chat.pending || !chatInput.value.trim()) return;
      const q = chatInput.value;
      chatInput.value = '';
      sendChat(q);
    });
    chatInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $('#chat-form').requestSubmit();
      }
    });
    $('#chat-new').addEventListener('click', newConversation);
    $('#chat-history').addEventListener('change', (e) => {
      if (e.target.value) restoreConversation(e.target.value);
    });

    updateJobsMeta();
    state.key = saved.trim();
    if (state.key) restart();
    else {
      resetChat();
      setConn('off');
      notify('Paste your API key (see .data/api_key or `ingestflow keys create`) to begin.', 'info');
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
