/* Live job updates: the WebSocket of all the user's jobs, and polling the list while it is down. */

import { api } from './api.js';
import { removeJob, upsertJob } from './jobs.js';
import { updateJobsMeta } from './jobrows.js';
import { setConn } from './notice.js';
import { ACTIVE, state } from './state.js';

const POLL_MS = 2000;
const live = { ws: null, attempt: 0, wsTimer: null, pollTimer: null, polling: false };

export function connect() {
  clearTimeout(live.wsTimer);
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
  live.ws = ws;
  if (!live.polling) setConn('connecting');
  ws.onopen = () => {
    if (gen !== state.generation) { ws.close(); return; }
    live.attempt = 0;
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
    live.ws = null;
    startPolling();
    scheduleReconnect();
  };
}

/** Closes the socket and stops polling and reconnecting (the key changed). */
export function disconnect() {
  if (live.ws) { try { live.ws.close(); } catch (_) { /* closing anyway */ } }
  live.ws = null;
  live.attempt = 0;
  clearTimeout(live.wsTimer);
  stopPolling();
}

function scheduleReconnect() {
  clearTimeout(live.wsTimer);
  const base = Math.min(30000, 1000 * 2 ** live.attempt);
  live.attempt = Math.min(live.attempt + 1, 10);
  live.wsTimer = setTimeout(connect, base * (0.75 + Math.random() * 0.5));
}

function startPolling() {
  if (live.polling) return;
  live.polling = true;
  setConn('polling');
  const tick = async () => {
    if (!live.polling) return;
    await pollOnce();
    if (live.polling) live.pollTimer = setTimeout(tick, POLL_MS);
  };
  live.pollTimer = setTimeout(tick, 0);
}

function stopPolling() {
  live.polling = false;
  clearTimeout(live.pollTimer);
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
