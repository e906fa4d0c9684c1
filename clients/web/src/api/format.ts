// Helpers to read proto-JSON values (int64 strings, non-finite doubles, RFC 3339 timestamps) and
// to format them for display.

import type { ClassificationMetrics, Double, Int64 } from './types';

/** A double or int64 from proto JSON as a JS number (NaN when absent or unparsable). */
export function num(v: Double | Int64 | null | undefined): number {
  if (v === undefined || v === null || v === '') return NaN;
  if (typeof v === 'number') return v;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  const n = Number(v);
  return Number.isNaN(n) ? NaN : n;
}

/** Like num() but 0 when absent: proto3 omits zero values unless told otherwise. */
export function num0(v: Double | Int64 | null | undefined): number {
  const n = num(v);
  return Number.isNaN(n) ? 0 : n;
}

/**
 * An int64 from proto JSON as an exact decimal string ("0" when absent). Keeps values above
 * 2^53 exact, which matters for ids used in URLs.
 */
export function int64(v: Int64 | null | undefined): string {
  if (v === undefined || v === null || v === '') return '0';
  if (typeof v === 'number') return Number.isFinite(v) ? Math.trunc(v).toString() : '0';
  const s = v.trim();
  return /^-?\d+$/.test(s) ? s.replace(/^(-?)0+(?=\d)/, '$1') : '0';
}

/** True when an int64 is non-zero. */
export function nonZero(v: Int64 | null | undefined): boolean {
  return int64(v) !== '0';
}

/** Compares two int64 values exactly (for sorting ids and versions). */
export function compareInt64(a: Int64 | undefined, b: Int64 | undefined): number {
  const x = BigInt(int64(a));
  const y = BigInt(int64(b));
  return x < y ? -1 : x > y ? 1 : 0;
}

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** An integer count with thousands separators; exact for int64 strings beyond 2^53. */
export function fmtInt(v: Int64 | Double | null | undefined): string {
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) {
    return int64(v).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
  const n = num(v);
  return Number.isFinite(n) ? intFmt.format(n) : '—';
}

/** A fraction with `digits` decimals, "—" when absent, "n/a" for non-finite values. */
export function fmtNum(v: Double | Int64 | null | undefined, digits = 4): string {
  if (v === undefined || v === null) return '—';
  const n = num(v);
  if (Number.isNaN(n)) return 'n/a';
  if (!Number.isFinite(n)) return n > 0 ? '∞' : '−∞';
  return n.toFixed(digits);
}

/** A ratio as a percentage. */
export function fmtPct(v: Double | null | undefined, digits = 2): string {
  const n = num(v);
  return Number.isFinite(n) ? `${(n * 100).toFixed(digits)}%` : '—';
}

/** AUPRC / ROC-AUC, shown as "n/a" when the labels held one class only. */
export function fmtRankMetric(m: ClassificationMetrics | undefined, v: Double | undefined): string {
  if (!m) return '—';
  if (m.singleClass) return 'n/a';
  return fmtNum(v);
}

/** Bytes in binary units. */
export function fmtBytes(v: Int64 | number | null | undefined): string {
  const n = num(v);
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = n;
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? x.toFixed(0) : x.toFixed(1)} ${units[i]}`;
}

/** A Timestamp for display in the user's locale, "—" when absent or the epoch. */
export function fmtTime(ts: string | null | undefined): string {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return '—';
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}

/** A duration in seconds as "1 d 2 h", "3 h 4 min", "5 min 6 s" or "7.8 s". */
export function fmtDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  return `${m} min ${s % 60} s`;
}

/** Seconds elapsed since a Timestamp (NaN when absent). */
export function ageSeconds(ts: string | null | undefined, now: number = Date.now()): number {
  if (!ts) return NaN;
  const t = new Date(ts).getTime();
  return Number.isNaN(t) ? NaN : (now - t) / 1000;
}

/** "MODEL_FAMILY_RANDOM_FOREST" -> "random forest". */
export function familyName(f: string | undefined): string {
  if (!f) return '—';
  return f.replace(/^MODEL_FAMILY_/, '').replace(/_/g, ' ').toLowerCase();
}

/** "RUN_STATUS_SUCCEEDED" -> "succeeded". */
export function runStatusName(s: string | undefined): string {
  if (!s) return '—';
  return s.replace(/^RUN_STATUS_/, '').toLowerCase();
}

/** "UPLOAD_MODE_LENIENT" -> "lenient". */
export function modeName(s: string | undefined): string {
  if (!s || s === 'UPLOAD_MODE_UNSPECIFIED') return 'strict';
  return s.replace(/^UPLOAD_MODE_/, '').toLowerCase();
}
