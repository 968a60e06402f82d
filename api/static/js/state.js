/* What the dashboard's modules share: the key, its generation, the jobs and rows on the page, the documents
 * named so far, the open document and its recording. Everything else lives in the module that uses it. */

export const KEY_STORE = 'ingestflow.apiKey';
export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
export const ACTIVE = new Set(['queued', 'running']);

export const state = {
  key: '',
  generation: 0,            // bumped when the key changes: late answers of an older generation are dropped
  jobs: new Map(),          // job id -> job
  rows: new Map(),          // job id -> <tr>
  docs: new Map(),          // document id -> document (or a stub with title/filename)
  docFetches: new Map(),    // document id -> pending promise
  docToken: 0,              // bumped when the document view opens or closes: late loads are dropped
  openDocId: null,
  audio: { url: null, documentId: null, token: 0, seek: null },   // the document view's recording
};
