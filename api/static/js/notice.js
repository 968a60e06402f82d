/* What the page says about itself: the notice banner and the live-updates indicator. */

import { $, clear, el } from './dom.js';

let noticeTimer = null;

export function notify(message, kind = 'error') {
  const box = $('#notice');
  clear(box);
  box.className = `notice notice-${kind}`;
  box.append(el('span', { text: message }),
    el('button', { type: 'button', class: 'ghost small', 'aria-label': 'dismiss', text: '✕', onclick: () => { box.hidden = true; } }));
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, kind === 'error' ? 10000 : 5000);
}

export function setConn(mode) {
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
