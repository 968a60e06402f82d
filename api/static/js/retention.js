/* The owner's retention rules, in a line under the upload box (set with PUT /v1/retention). */

import { api } from './api.js';
import { $ } from './dom.js';
import { state } from './state.js';

const ACTIONS = { delete: 'deleted', keep_redacted: 'kept only redacted' };

function describe(where, rule) {
  return `${where}: ${ACTIONS[rule.action] || rule.action} after ${rule.days} ${rule.days === 1 ? 'day' : 'days'}`;
}

/** Shows the key's rules (or that its documents are kept until deleted). */
export async function loadRetention() {
  const line = $('#retention');
  const gen = state.generation;
  try {
    const body = await api('/v1/retention');
    if (gen !== state.generation) return;
    const rules = [
      ...(body.default ? [describe('documents', body.default)] : []),
      ...Object.entries(body.collections || {}).map(([name, rule]) => describe(`collection “${name}”`, rule)),
    ];
    line.textContent = rules.length
      ? `Retention: ${rules.join('; ')}.`
      : 'Retention: documents are kept until you delete them.';
    line.hidden = false;
  } catch (_) {
    line.hidden = true; // an older server, or no key yet: nothing to say
  }
}
