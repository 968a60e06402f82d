/* Chat: questions and answers of one conversation, kept per key across reloads, and the earlier conversations. */

import { renderAssistant } from './answer.js';
import { api } from './api.js';
import { $, clear, el } from './dom.js';
import { fmtClock } from './format.js';
import { notify } from './notice.js';
import { state } from './state.js';

const CONV_STORE = 'ingestflow.conversation'; // + '.' + a hash of the key: one current conversation per user
const chat = { conversationId: null, pending: false, generation: 0 };

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
  chat.conversationId = id || null;
  $('#chat').dataset.conversationId = id || '';
  if (!state.key) return;
  try {
    if (id) localStorage.setItem(convStoreKey(), id);
    else localStorage.removeItem(convStoreKey());
  } catch (_) { /* storage disabled: the conversation lasts as long as the page */ }
  const select = $('#chat-history');
  if ([...select.options].some((o) => o.value === (id || ''))) select.value = id || '';
}

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

function userTurn(text) {
  return el('div', { class: 'turn turn-user' }, el('div', { class: 'turn-role', text: 'You' }), el('div', { class: 'turn-text', text }));
}

function setChatBusy(busy) {
  chat.pending = busy;
  $('#chat-send').disabled = busy;
  $('#chat').classList.toggle('busy', busy);
}

function showFailure(asked, answer, q, message) {
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
}

async function sendChat(query) {
  const q = String(query || '').trim();
  if (!q || chat.pending) return;
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
  const chatGen = chat.generation;
  const body = { query: q };
  if (chat.conversationId) body.conversation_id = chat.conversationId;
  let data;
  try {
    data = await api('/v1/chat', { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  } catch (err) {
    if (gen !== state.generation || chatGen !== chat.generation) return;
    setChatBusy(false);
    let message = `Could not answer: ${err.message}`;
    if (err.status === 404 && body.conversation_id) {
      setConversation(null); // deleted, or another key's: the next question starts a new one
      message = 'This conversation no longer exists; asking again starts a new one.';
    }
    showFailure(asked, answer, q, message);
    return;
  }
  if (gen !== state.generation || chatGen !== chat.generation) return;
  setChatBusy(false);
  answer.removeAttribute('aria-busy');
  if (data.question_turn_id) asked.dataset.turnId = data.question_turn_id;
  const isNew = data.conversation_id && data.conversation_id !== chat.conversationId;
  setConversation(data.conversation_id);
  renderAssistant(answer, data, q);
  log.scrollTop += asked.getBoundingClientRect().top - log.getBoundingClientRect().top - 6;
  if (isNew) loadConversationList();
}

/** Shows a stored conversation's turns (on reload, on a key change, or picked from the list). */
async function restoreConversation(id) {
  chat.generation += 1;
  const chatGen = chat.generation;
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
    if (chatGen !== chat.generation) return;
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
  if (chatGen !== chat.generation) return;
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
  chat.generation += 1; // an answer still on its way belongs to the old conversation
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
  select.value = [...select.options].some((o) => o.value === chat.conversationId) ? chat.conversationId : '';
  select.disabled = !page.items.length;
}

/** The chat of the current key: its stored conversation and the list, or an empty chat without a key. */
export function resetChat() {
  const select = $('#chat-history');
  clear(select);
  select.append(el('option', { value: '', text: 'Earlier conversations…' }));
  select.disabled = true;
  if (!state.key) {
    chat.generation += 1;
    setChatBusy(false);
    chat.conversationId = null;
    chatEmpty();
    return;
  }
  restoreConversation(storedConversation());
  loadConversationList();
}

export function wireChat() {
  const chatInput = $('#chat-input');
  $('#chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (chat.pending || !chatInput.value.trim()) return;
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
}
