export interface LegendItem {
  name: string;
  color: string;
  dashed?: boolean;
}

/** An HTML legend below a chart (wraps on narrow screens, readable by screen readers). */
export function Legend({ items }: { items: LegendItem[] }) {
  if (items.length < 2) return null;
  return (
    <ul className="legend" aria-label="Legend">
      {items.map((it) => (
        <li key={it.name}>
          <svg width="22" height="10" aria-hidden="true" focusable="false">
            <line
              x1="1"
              y1="5"
              x2="21"
              y2="5"
              stroke={it.color}
              strokeWidth="3"
              strokeDasharray={it.dashed ? '5 3' : undefined}
            />
          </svg>
          {it.name}
        </li>
      ))}
    </ul>
  );
}
