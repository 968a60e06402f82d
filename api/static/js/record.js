/* The record button: the microphone streamed to WS /v1/ws/transcribe as WebM/Opus (MediaRecorder), the words
 * shown as they are heard (settled ones plain, the guess after them dimmed), then a link to the new document. */

import { $, clear, el } from './dom.js';
import { openDoc } from './docview.js';
import { logEvent } from './eventlog.js';
import { notify } from './notice.js';
import { state } from './state.js';

const SLICE_MS = 250; // MediaRecorder hands over a piece of the recording this often
const rec = { ws: null, media: null, stream: null };

function setStatus(text) {
  $('#record-status').textContent = text;
}

function setRecording(on) {
  const button = $('#record-btn');
  button.setAttribute('aria-pressed', on ? 'true' : 'false');
  button.textContent = on ? '■ Stop' : '● Record';
  button.classList.toggle('recording', on);
}

function release() {
  if (rec.stream) for (const track of rec.stream.getTracks()) track.stop();
  rec.ws = null;
  rec.media = null;
  rec.stream = null;
  setRecording(false);
}

function show(message) {
  const finals = $('#record-final');
  const partial = $('#record-partial');
  switch (message.type) {
    case 'ready':
      setStatus('Listening…');
      break;
    case 'final':
      for (const seg of message.segments) finals.append(el('span', { class: 'seg', text: `${seg.text} ` }));
      break;
    case 'partial':
      partial.textContent = message.segments.map((s) => s.text).join(' ');
      break;
    case 'limit':
      notify(message.detail, 'info');
      break;
    case 'document': {
      partial.textContent = '';
      setStatus(message.duplicate ? 'Already stored as a document: ' : 'Saved as a document: ');
      const link = $('#record-doc');
      link.hidden = false;
      link.dataset.documentId = message.document_id;
      logEvent(`live call stored as document ${message.document_id}`);
      break;
    }
    case 'empty':
      setStatus(message.detail);
      break;
    case 'error':
      notify(message.detail);
      setStatus('');
      break;
    default:
      break;
  }
}

async function start() {
  if (!state.key) {
    notify('Enter your API key first.');
    $('#api-key').focus();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    notify(`No microphone: ${err.message || err}`);
    return;
  }
  clear($('#record-final'));
  $('#record-partial').textContent = '';
  $('#record-doc').hidden = true;
  setStatus('Connecting…');
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const redact = $('#redact-input').checked ? 'true' : 'false';
  const translate = $('#translate-input').checked ? 'true' : 'false';
  const ws = new WebSocket(`${scheme}://${location.host}/v1/ws/transcribe?format=webm&redact=${redact}&translate=${translate}`
    + `&token=${encodeURIComponent(state.key)}`);
  const mime = MediaRecorder.isTypeSupported('audio/webm;codecs=opus') ? 'audio/webm;codecs=opus' : '';
  const media = new MediaRecorder(stream, mime ? { mimeType: mime } : {});
  Object.assign(rec, { ws, media, stream });
  setRecording(true);
  media.ondataavailable = (event) => {
    if (event.data.size && ws.readyState === WebSocket.OPEN) ws.send(event.data);
  };
  media.onstop = () => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'stop' }));
    setStatus('Finishing…');
  };
  ws.onopen = () => media.start(SLICE_MS);
  ws.onmessage = (event) => show(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (media.state !== 'inactive') media.stop();
    if (event.code !== 1000 && event.reason) notify(`Live transcription stopped: ${event.reason}`);
    release();
  };
}

function stop() {
  if (rec.media && rec.media.state !== 'inactive') rec.media.stop();
  for (const track of rec.stream ? rec.stream.getTracks() : []) track.stop();
}

export function wireRecord() {
  $('#record-btn').addEventListener('click', () => (rec.ws ? stop() : start()));
  $('#record-doc').addEventListener('click', (event) => {
    event.preventDefault();
    openDoc(event.currentTarget.dataset.documentId);
  });
}
