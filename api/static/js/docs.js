/* Documents the page has named so far (a row, a hit, a source shows a title, not an id). */

import { api } from './api.js';
import { shortId, visible } from './format.js';
import { state } from './state.js';

const renamed = [];

/** Calls fn(documentId) when a document's title or filename becomes known or changes. */
export function onRename(fn) {
  renamed.push(fn);
}

export function docName(documentId) {
  const doc = state.docs.get(documentId);
  if (!doc) return shortId(documentId);
  return visible(doc.title || doc.filename) || shortId(documentId);
}

export function rememberDoc(doc) {
  if (!doc || !doc.id) return;
  const had = state.docs.get(doc.id);
  state.docs.set(doc.id, { ...(had || {}), ...doc });
  if (!had || had.title !== doc.title || had.filename !== doc.filename) renamed.forEach((fn) => fn(doc.id));
}

/** Fetches a document's name once, if it is not known yet. */
export function ensureDoc(documentId) {
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

export async function loadDocNames() {
  const gen = state.generation;
  try {
    const page = await api('/v1/documents?limit=200');
    if (gen === state.generation) page.items.forEach(rememberDoc);
  } catch (_) { /* names are fetched one by one later */ }
}
