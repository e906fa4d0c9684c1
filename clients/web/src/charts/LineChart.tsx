// A line chart drawn as inline SVG: one <path class="series"> per series with data, optional
// point markers, axes with round ticks, and an HTML legend.

import { useId } from 'react';
import { extent, linear, niceTicks, PALETTE, tickFormat, type Domain } from './scale';
import { Legend } from './Legend';

export interface Point {
  x: number;
  y: number;
  /** Tooltip text for the point marker. */
  label?: string;
}

export interface Series {
  name: string;
  points: Point[];
  color?: string;
  dashed?: boolean;
  /** Draw a marker at each point. */
  markers?: boolean;
  /** Step-wise (hold y until the next x), as a precision-recall curve is drawn. */
  step?: boolean;
}

export interface LineChartProps {
  title: string;
  series: Series[];
  xLabel: string;
  yLabel: string;
  xDomain?: Domain;
  yDomain?: Domain;
  /** Bounds an automatic y domain may not cross (for example [0, 1] for a probability). */
  yBounds?: Domain;
  xFormat?: (v: number) => string;
  yFormat?: (v: number) => string;
  /** Only integer x ticks (epochs, versions). */
  integerX?: boolean;
  width?: number;
  height?: number;
  /** Text shown instead of the plot when no series has points. */
  emptyText?: string;
  /** Vertical lines at these x values, each with a short label (events such as version changes). */
  events?: ChartEvent[];
}

export interface ChartEvent {
  x: number;
  label: string;
}

const M = { top: 12, right: 16, bottom: 44, left: 56 };

export function LineChart({
  title,
  series,
  xLabel,
  yLabel,
  xDomain,
  yDomain,
  yBounds,
  xFormat: xFormatProp,
  yFormat: yFormatProp,
  integerX,
  width = 480,
  height = 300,
  emptyText = 'No data yet.',
  events = [],
}: LineChartProps) {
  const id = useId();
  const drawn = series
    .map((s, i) => ({
      ...s,
      color: s.color ?? PALETTE[i % PALETTE.length],
      points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)),
    }))
    .filter((s) => s.points.length > 0);
  const all = drawn.flatMap((s) => s.points);
  const xd = xDomain ?? extent(all.map((p) => p.x), 0.02);
  let yd = yDomain ?? extent(all.map((p) => p.y));
  if (!yDomain && yBounds) yd = [Math.max(yBounds[0], yd[0]), Math.min(yBounds[1], yd[1])];
  const x = linear(xd, [M.left, width - M.right]);
  const y = linear(yd, [height - M.bottom, M.top]);
  let xt = niceTicks(xd[0], xd[1], Math.max(2, Math.floor(width / 90)));
  if (integerX) xt = xt.filter((v) => Number.isInteger(v));
  const yt = niceTicks(yd[0], yd[1], 5);
  const xFormat = xFormatProp ?? tickFormat(xt);
  const yFormat = yFormatProp ?? tickFormat(yt);

  const pathOf = (s: (typeof drawn)[number]) => {
    const pts = s.points;
    let d = `M${x(pts[0].x).toFixed(1)},${y(pts[0].y).toFixed(1)}`;
    for (let i = 1; i < pts.length; i++) {
      if (s.step) d += `H${x(pts[i].x).toFixed(1)}`;
      d += `${s.step ? 'V' : `L${x(pts[i].x).toFixed(1)},`}${y(pts[i].y).toFixed(1)}`;
    }
    return d;
  };

  const shownEvents = events.filter((e) => Number.isFinite(e.x) && e.x >= xd[0] && e.x <= xd[1]);
  const summary = drawn.length
    ? `${title}: ${drawn.map((s) => `${s.name} (${s.points.length} points)`).join(', ')}` +
      (shownEvents.length ? `; marked: ${shownEvents.map((e) => e.label).join(', ')}.` : '.')
    : `${title}: no data.`;

  return (
    <figure className="chart">
      <figcaption id={`${id}-t`}>{title}</figcaption>
      {drawn.length === 0 ? (
        <p className="chart-empty">{emptyText}</p>
      ) : (
        <>
          <svg
            viewBox={`0 0 ${width} ${height}`}
            role="img"
            style={{ maxWidth: width }}
            aria-labelledby={`${id}-t ${id}-d`}
            preserveAspectRatio="xMidYMid meet"
          >
            <desc id={`${id}-d`}>{summary}</desc>
            <g className="grid" aria-hidden="true">
              {yt.map((v) => (
                <line key={`gy${v}`} x1={M.left} x2={width - M.right} y1={y(v)} y2={y(v)} />
              ))}
            </g>
            <g className="axis x-axis" aria-hidden="true">
              <line x1={M.left} x2={width - M.right} y1={height - M.bottom} y2={height - M.bottom} />
              {xt.map((v) => (
                <g key={`x${v}`} transform={`translate(${x(v)},${height - M.bottom})`}>
                  <line y2="5" />
                  <text y="18" textAnchor="middle">
                    {xFormat(v)}
                  </text>
                </g>
              ))}
              <text className="axis-label" x={(M.left + width - M.right) / 2} y={height - 6} textAnchor="middle">
                {xLabel}
              </text>
            </g>
            <g className="axis y-axis" aria-hidden="true">
              <line x1={M.left} x2={M.left} y1={M.top} y2={height - M.bottom} />
              {yt.map((v) => (
                <g key={`y${v}`} transform={`translate(${M.left},${y(v)})`}>
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
              </text>
            </g>
            <g className="events">
              {shownEvents.map((e) => (
                <g key={`e${e.x}-${e.label}`} className="event" data-event={e.label}>
                  <line x1={x(e.x)} x2={x(e.x)} y1={M.top} y2={height - M.bottom} stroke="currentColor" strokeDasharray="2 3" />
                  <text x={x(e.x) + 3} y={M.top + 10} fontSize="10">
                    {e.label}
                  </text>
                </g>
              ))}
            </g>
            <g>
              {drawn.map((s) => (
                <g key={s.name} className="series-group" data-series={s.name}>
                  {s.points.length > 1 && (
                    <path
                      className="series"
                      data-series={s.name}
                      d={pathOf(s)}
                      fill="none"
                      stroke={s.color}
                      strokeWidth="2"
                      strokeDasharray={s.dashed ? '6 4' : undefined}
                    />
                  )}
                  {(s.markers || s.points.length === 1) &&
                    s.points.map((p, i) => (
                      <circle
                        key={i}
                        className="point"
                        cx={x(p.x)}
                        cy={y(p.y)}
                        r="3.5"
                        fill={s.color}
                      >
                        <title>{p.label ?? `${s.name}: ${xFormat(p.x)}, ${yFormat(p.y)}`}</title>
                      </circle>
                    ))}
                </g>
              ))}
            </g>
          </svg>
          <Legend items={drawn.map((s) => ({ name: s.name, color: s.color, dashed: s.dashed }))} />
        </>
      )}
    </figure>
  );
}
