// Minimal scale and tick helpers for the SVG charts.

export type Domain = [number, number];

/** Linear map from a domain onto a pixel range. */
export function linear(domain: Domain, range: Domain): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** Round tick values covering [min, max], about `count` of them. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const span = max - min;
  const raw = span / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm >= 7 ? 10 : norm >= 3 ? 5 : norm >= 1.5 ? 2 : 1) * mag;
  const start = Math.ceil(min / step - 1e-9) * step;
  const out: number[] = [];
  for (let v = start; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** The [min, max] of values, padded a little; [0, 1] when there are none. */
export function extent(values: number[], pad = 0.05): Domain {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  } else {
    const d = (hi - lo) * pad;
    lo -= d;
    hi += d;
  }
  return [lo, hi];
}

/** A formatter showing just enough decimals to tell the given ticks apart. */
export function tickFormat(ticks: number[]): (v: number) => string {
  if (ticks.length < 2) return shortNumber;
  const step = Math.abs(ticks[1] - ticks[0]);
  if (step >= 1 && Math.max(...ticks.map(Math.abs)) >= 1e4) return shortNumber;
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return (v) => v.toFixed(decimals);
}

/** Compact tick label: 0.25, 1.5k, 2M. */
export function shortNumber(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  if (a === 0) return '0';
  if (a < 0.01) return v.toExponential(0);
  return `${+v.toPrecision(3)}`;
}

/** Colour-blind-safe palette (Okabe–Ito subset), each at least 3:1 against white. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#A4408C', '#5B4A9C', '#8A6D00', '#333333'];
