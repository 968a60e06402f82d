/* The pipeline's stages as the server declares them (GET /v1/stages): each kind's plan and each stage's label.
 * No stage is named in the dashboard's code, so a stage added to the registry shows without editing it. */

import { clock, fmtDuration, parseTime } from './format.js';

const STAGES = [];      // every stage in pipeline order: name, kinds, only_redacted, only_translated
const STAGE_LABEL = {}; // stage name -> its progress wording ("parsing")

/** Fetches the declared stages; resolves true once they are known (false if the server could not say). */
export function loadStages() {
  return fetch('/v1/stages').then((r) => (r.ok ? r.json() : null)).then((body) => {
    if (!body) return false;
    for (const s of body.stages) STAGE_LABEL[s.name] = s.label;
    STAGES.splice(0, STAGES.length, ...body.stages);
    return true;
  }).catch(() => false); // the badges fill in from each job's own stage list
}

/** A badge's text: the last word of a hyphenated name ("extract-entities" shows as "entities"). */
export const badgeLabel = (name) => String(name).split('-').pop();

/** The per-stage list, or one inferred from the kind's plan when the API has not given one yet. */
export function stagesOf(job) {
  if (job.stages && job.stages.length) return { stages: job.stages, inferred: false };
  const plan = STAGES.filter((s) => s.kinds.includes(job.kind) && (job.redact || !s.only_redacted)
    && (job.translate || !s.only_translated)).map((s) => s.name);
  if (!plan.length) return { stages: [], inferred: true };
  let current = false;
  const stages = plan.map((name) => {
    let stateName = 'pending';
    if (job.status === 'completed') stateName = 'completed';
    else if (job.status === 'running' && !current && job.stage === STAGE_LABEL[name]) {
      stateName = 'running';
      current = true;
    } else if (job.status === 'failed' || job.status === 'cancelled') stateName = 'unknown';
    return { name, stage: STAGE_LABEL[name], state: stateName, attempts: 0 };
  });
  return { stages, inferred: true };
}

/** A badge's tooltip: state, attempts, times and the stage's accounting (wall, CPU, wait, model). */
export function stageTitle(s) {
  const parts = [`${s.name} (${s.stage || STAGE_LABEL[s.name] || ''}): ${s.state}`];
  if (s.attempts) parts.push(`attempts: ${s.attempts}`);
  const a = parseTime(s.started_at);
  const b = parseTime(s.finished_at);
  if (a) parts.push(`started ${clock(a)}`);
  if (a && b) parts.push(`took ${fmtDuration((b - a) / 1000)}`);
  const m = s.metrics;
  if (m) parts.push(`wall ${m.wall_s.toFixed(2)} s · CPU ${m.cpu_s.toFixed(2)} s · waited ${m.wait_s.toFixed(2)} s`);
  if (m && m.model) parts.push(`model: ${m.model}`);
  if (s.error) parts.push(`error: ${s.error}`);
  return parts.join(' · ');
}
