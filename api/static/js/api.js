/* REST calls with the key as `Authorization: Bearer <key>`, and FastAPI's error bodies made readable. */

import { setConn } from './notice.js';
import { state } from './state.js';

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** The `detail` of a FastAPI error body, readable. */
export function detailText(status, statusText, body) {
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

async function send(path, init) {
  try {
    return await fetch(path, { ...init, cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, `network error: ${err.message || err}`);
  }
}

async function failure(resp) {
  const text = await resp.text().catch(() => '');
  return new ApiError(resp.status, detailText(resp.status, resp.statusText, text));
}

/** JSON (or text) from the API; an ApiError with the server's reason otherwise. */
export async function api(path, { method = 'GET', body, headers } = {}) {
  const h = { Accept: 'application/json, text/plain;q=0.9, */*;q=0.5', ...(headers || {}) };
  if (state.key) h.Authorization = `Bearer ${state.key}`;
  const resp = await send(path, { method, body, headers: h });
  if (!resp.ok) {
    if (resp.status === 401) setConn('auth');
    throw await failure(resp);
  }
  if (resp.status === 204) return null;
  const type = resp.headers.get('content-type') || '';
  return type.includes('json') ? resp.json() : resp.text();
}

/** The bytes of a route as a Blob (the file route needs the Authorization header, so no plain <audio src>). */
export async function apiBlob(path) {
  const h = {};
  if (state.key) h.Authorization = `Bearer ${state.key}`;
  const resp = await send(path, { headers: h });
  if (!resp.ok) throw await failure(resp);
  return resp.blob();
}
