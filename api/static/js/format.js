/* Times, durations, sizes, citations and names as the page writes them. */

// Bidirectional controls (U+202E makes "invoice\u202egnp.exe.pdf" read "invoicefdp.exe.png"), zero-width and other
// invisible format characters, control characters: a name shows them as codes, never renders them
// (ingestflow/display.py does the same for the API and the CLI).
const HIDDEN = /[\p{Cf}\p{Cc}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/gu;
export const visible = (name) => String(name ?? '').replace(
  HIDDEN, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}⟩`);

export function parseTime(value) {
  if (!value) return null;
  let s = String(value);
  if (!/[zZ]|[+-]\d\d:?\d\d$/.test(s)) s += 'Z'; // naive timestamps from the API are UTC
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

const pad = (n) => String(n).padStart(2, '0');
export const clock = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;

export function fmtClock(value) {
  const d = parseTime(value);
  if (!d) return '';
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? clock(d) : `${d.toLocaleDateString()} ${clock(d)}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
}

/** Seconds as mm:ss (h:mm:ss past an hour). */
export function mmss(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : '');
export const clampPct = (v) => Math.max(0, Math.min(100, Math.round(Number(v) || 0)));

/** Where a hit or a source sits: "p. 3", "pp. 3–4", "01:05–01:32". */
export function citation(hit) {
  if (Number.isFinite(hit.start_s)) {
    return Number.isFinite(hit.end_s) ? `${mmss(hit.start_s)}–${mmss(hit.end_s)}` : mmss(hit.start_s);
  }
  if (Number.isFinite(hit.page)) {
    return Number.isFinite(hit.page_end) && hit.page_end !== hit.page ? `pp. ${hit.page}–${hit.page_end}` : `p. ${hit.page}`;
  }
  return '';
}
