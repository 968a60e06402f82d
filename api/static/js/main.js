/* ingestflow dashboard: plain ES modules, no build step; markdown-it and DOMPurify vendored in ../vendor/.
 *
 * Server text reaches the page through textContent / text nodes, or as markdown through markdown.js (raw HTML
 * kept as text, the result sanitized). REST calls send `Authorization: Bearer <key>`; the WebSocket passes the
 * key as `?token=`. This module wires the page and starts over when the key changes.
 */

import { wireAudio } from './audio.js';
import { resetChat, wireChat } from './chat.js';
import { $, clear } from './dom.js';
import { loadDocNames, onRename } from './docs.js';
import { closeDoc, wireDocView } from './docview.js';
import { wireEventLog } from './eventlog.js';
import { renderRows, updateJobsMeta } from './jobrows.js';
import { loadJobs, wireJobs } from './jobs.js';
import { connect, disconnect } from './live.js';
import { notify, setConn } from './notice.js';
import { wireRecord } from './record.js';
import { wireSearch } from './search.js';
import { loadRetention } from './retention.js';
import { loadStages } from './stages.js';
import { KEY_STORE, state } from './state.js';
import { wireUploads } from './uploads.js';

/** Forgets everything of the previous key and loads the new key's jobs, documents and chat. */
function restart() {
  state.generation += 1;
  disconnect();
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
  loadRetention();
}

function setKey(key) {
  state.key = (key || '').trim();
  try {
    if (state.key) localStorage.setItem(KEY_STORE, state.key);
    else localStorage.removeItem(KEY_STORE);
  } catch (_) { /* storage disabled: the key lives for this page only */ }
  restart();
}

function wireKey(keyInput) {
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
}

function init() {
  loadStages().then((known) => { if (known) renderRows(); });
  onRename((documentId) => renderRows(documentId));
  let saved = '';
  try { saved = localStorage.getItem(KEY_STORE) || ''; } catch (_) { /* no storage */ }
  const keyInput = $('#api-key');
  keyInput.value = saved;
  wireKey(keyInput);
  wireUploads();
  wireRecord();
  wireJobs();
  wireEventLog();
  wireDocView();
  wireAudio();
  wireSearch();
  wireChat();

  updateJobsMeta();
  state.key = saved.trim();
  if (state.key) restart();
  else {
    resetChat();
    setConn('off');
    notify('Paste your API key (see .data/api_key or `ingestflow keys create`) to begin.', 'info');
  }
}

// A module script runs after the document is parsed, so the page's elements are all there.
init();
