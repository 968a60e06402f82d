/* The document view's player for recordings: loaded as a Blob, seeked to a cited second, following the text. */

import { apiBlob } from './api.js';
import { $, scrollWithin } from './dom.js';
import { fmtBytes } from './format.js';
import { state } from './state.js';

function playerStatus(text, kind = '') {
  const box = $('#doc-player-status');
  box.textContent = text || '';
  box.className = `player-status ${kind === 'error' ? 'error-text' : 'muted'}`;
}

/** Stops the player and frees its object URL (on close, and when another document opens). */
export function releaseAudio() {
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
export async function loadAudio(doc) {
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
export function seekAudio(seconds, play = false) {
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

export function wireAudio() {
  const audio = $('#doc-audio');
  audio.addEventListener('loadedmetadata', onAudioReady);
  audio.addEventListener('error', onAudioError);
  audio.addEventListener('timeupdate', followAudio);
  audio.addEventListener('seeked', followAudio);
}
