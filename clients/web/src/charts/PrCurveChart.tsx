// Precision-recall curves (one or several, overlaid) on the unit square.

import { num } from '../api/format';
import type { PrPoint } from '../api/types';
import { LineChart, type Series } from './LineChart';
import { PALETTE } from './scale';

export interface PrCurve {
  name: string;
  points: PrPoint[] | undefined;
  color?: string;
  dashed?: boolean;
}

/** Curve points ordered by recall (then by falling precision), invalid ones dropped. */
export function prSeriesPoints(points: PrPoint[] | undefined): { x: number; y: number; label: string }[] {
  return (points ?? [])
    .map((p) => ({ x: num(p.recall), y: num(p.precision), t: num(p.threshold) }))
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
    .sort((a, b) => a.x - b.x || b.y - a.y)
    .map((p) => ({
      x: p.x,
      y: p.y,
      label: `recall ${p.x.toFixed(3)}, precision ${p.y.toFixed(3)}${Number.isFinite(p.t) ? `, threshold ${p.t.toFixed(3)}` : ''}`,
    }));
}

export function PrCurveChart({
  curves,
  title = 'Precision-recall curve',
  width,
  height,
}: {
  curves: PrCurve[];
  title?: string;
  width?: number;
  height?: number;
}) {
  const series: Series[] = curves.map((c, i) => ({
    name: c.name,
    points: prSeriesPoints(c.points),
    color: c.color ?? PALETTE[i % PALETTE.length],
    dashed: c.dashed,
    step: true,
  }));
  return (
    <LineChart
      title={title}
      series={series}
      xLabel="Recall"
      yLabel="Precision"
      xDomain={[0, 1]}
      yDomain={[0, 1]}
      xFormat={(v) => v.toFixed(1)}
      yFormat={(v) => v.toFixed(1)}
      width={width ?? 420}
      height={height ?? 320}
      emptyText="No precision-recall curve (unlabelled rows or no curve reported)."
    />
  );
}
