// Grouped bar chart as inline SVG: one <rect class="bar"> per non-zero value, linear or log scale.

import { useId } from 'react';
import { linear, niceTicks, PALETTE, shortNumber } from './scale';
import { Legend } from './Legend';

export interface BarSeries {
  name: string;
  values: number[];
  color?: string;
}

export interface BarChartProps {
  title: string;
  categories: string[];
  series: BarSeries[];
  xLabel: string;
  yLabel: string;
  /** "log" draws log10(1 + v), so rare classes stay visible next to common ones. */
  scale?: 'linear' | 'log';
  width?: number;
  height?: number;
  /** Show every n-th category label (default: as many as fit). */
  labelEvery?: number;
  emptyText?: string;
  yFormat?: (v: number) => string;
}

const M = { top: 12, right: 12, bottom: 52, left: 56 };

export function BarChart({
  title,
  categories,
  series,
  xLabel,
  yLabel,
  scale = 'linear',
  width = 520,
  height = 300,
  labelEvery,
  emptyText = 'No data yet.',
  yFormat = shortNumber,
}: BarChartProps) {
  const id = useId();
  const colored = series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length] }));
  const max = Math.max(0, ...colored.flatMap((s) => s.values.filter((v) => Number.isFinite(v))));
  const tf = (v: number) => (scale === 'log' ? Math.log10(1 + Math.max(0, v)) : v);
  const top = tf(max) || 1;
  const y = linear([0, top], [height - M.bottom, M.top]);
  const plotW = width - M.left - M.right;
  const band = categories.length ? plotW / categories.length : plotW;
  const inner = band * 0.8;
  const barW = colored.length ? inner / colored.length : inner;
  const every = labelEvery ?? Math.max(1, Math.ceil(categories.length / Math.max(1, Math.floor(plotW / 48))));

  const ticks =
    scale === 'log'
      ? [0, 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8].filter((v) => v <= Math.max(1, max))
      : niceTicks(0, max || 1, 5);

  const empty = categories.length === 0 || max <= 0;
  return (
    <figure className="chart">
      <figcaption id={`${id}-t`}>{title}</figcaption>
      {empty ? (
        <p className="chart-empty">{emptyText}</p>
      ) : (
        <>
          <svg viewBox={`0 0 ${width} ${height}`} role="img"
            style={{ maxWidth: width }}
            aria-labelledby={`${id}-t ${id}-d`}
          >
            <desc id={`${id}-d`}>
              {`${title}: ${categories.length} categories; ${colored
                .map((s) => `${s.name} total ${shortNumber(s.values.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0))}`)
                .join(', ')}${scale === 'log' ? ' (log scale)' : ''}.`}
            </desc>
            <g className="grid" aria-hidden="true">
              {ticks.map((v) => (
                <line key={v} x1={M.left} x2={width - M.right} y1={y(tf(v))} y2={y(tf(v))} />
              ))}
            </g>
            <g className="axis y-axis" aria-hidden="true">
              <line x1={M.left} x2={M.left} y1={M.top} y2={height - M.bottom} />
              {ticks.map((v) => (
                <g key={v} transform={`translate(${M.left},${y(tf(v))})`}>
                  <line x2="-5" />
                  <text x="-8" dy="0.32em" textAnchor="end">
                    {yFormat(v)}
                  </text>
                </g>
              ))}
              <text
                className="axis-label"
                transform={`translate(14,${(M.top + height - M.bottom) / 2}) rotate(-90)`}
                textAnchor="middle"
              >
                {yLabel}
                {scale === 'log' ? ' (log)' : ''}
              </text>
            </g>
            <g className="axis x-axis" aria-hidden="true">
              <line x1={M.left} x2={width - M.right} y1={height - M.bottom} y2={height - M.bottom} />
              {categories.map((c, i) =>
                i % every === 0 ? (
                  <text key={i} x={M.left + band * (i + 0.5)} y={height - M.bottom + 16} textAnchor="middle">
                    {c}
                  </text>
                ) : null,
              )}
              <text className="axis-label" x={(M.left + width - M.right) / 2} y={height - 6} textAnchor="middle">
                {xLabel}
              </text>
            </g>
            <g>
              {categories.map((c, i) =>
                colored.map((s, j) => {
                  const v = s.values[i] ?? 0;
                  if (!Number.isFinite(v) || v <= 0) return null;
                  const yTop = y(tf(v));
                  return (
                    <rect
                      key={`${i}-${j}`}
                      className="bar"
                      data-series={s.name}
                      x={M.left + band * i + (band - inner) / 2 + barW * j}
                      y={yTop}
                      width={Math.max(1, barW - 1)}
                      height={Math.max(0.5, height - M.bottom - yTop)}
                      fill={s.color}
                    >
                      <title>{`${c}: ${s.name} ${v.toLocaleString('en-US')}`}</title>
                    </rect>
                  );
                }),
              )}
            </g>
          </svg>
          <Legend items={colored.map((s) => ({ name: s.name, color: s.color }))} />
        </>
      )}
    </figure>
  );
}
