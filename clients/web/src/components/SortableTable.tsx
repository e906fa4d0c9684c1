// A table whose column headers are buttons that sort it (aria-sort tells assistive technology).

import { useMemo, useState, type ReactNode } from 'react';

export interface Column<T> {
  key: string;
  header: string;
  /** Sort value; omit to make the column unsortable. */
  value?: (row: T) => number | string;
  render: (row: T) => ReactNode;
  numeric?: boolean;
}

export function SortableTable<T>({
  caption,
  rows,
  columns,
  rowKey,
  initialSort,
  rowClassName,
  hideCaption,
  limit,
}: {
  caption: string;
  /** Keep the caption for assistive technology only (when a visible heading says the same). */
  hideCaption?: boolean;
  /** Show only this many rows (after sorting) until the user asks for all. */
  limit?: number;
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T, index: number) => string;
  initialSort?: { key: string; dir: 'asc' | 'desc' };
  rowClassName?: (row: T) => string | undefined;
}) {
  const [sort, setSort] = useState(initialSort);
  const [expanded, setExpanded] = useState(false);
  const sorted = useMemo(() => {
    const col = columns.find((c) => c.key === sort?.key);
    if (!col?.value || !sort) return rows;
    const get = col.value;
    const sign = sort.dir === 'asc' ? 1 : -1;
    return [...rows].sort((a, b) => {
      const x = get(a);
      const y = get(b);
      if (typeof x === 'number' && typeof y === 'number') {
        if (Number.isNaN(x)) return 1;
        if (Number.isNaN(y)) return -1;
        return (x - y) * sign;
      }
      return String(x).localeCompare(String(y)) * sign;
    });
  }, [rows, columns, sort]);
  const limited = limit !== undefined && !expanded && sorted.length > limit;
  const shown = limited ? sorted.slice(0, limit) : sorted;

  return (
    <div className="table-wrap">
      <table>
        <caption className={hideCaption ? 'visually-hidden' : undefined}>{caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => {
              const active = sort?.key === c.key;
              const ariaSort = active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : undefined;
              return (
                <th key={c.key} scope="col" aria-sort={ariaSort} className={c.numeric ? 'num' : undefined}>
                  {c.value ? (
                    <button
                      type="button"
                      className="sort"
                      onClick={() =>
                        setSort({
                          key: c.key,
                          dir: active && sort.dir === 'desc' ? 'asc' : active ? 'desc' : c.numeric ? 'desc' : 'asc',
                        })
                      }
                    >
                      {c.header}
                      <span aria-hidden="true" className="sort-mark">
                        {active ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ' ↕'}
                      </span>
                    </button>
                  ) : (
                    c.header
                  )}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {shown.map((r, i) => (
            <tr key={rowKey(r, i)} className={rowClassName?.(r)}>
              {columns.map((c) => (
                <td key={c.key} className={c.numeric ? 'num' : undefined}>
                  {c.render(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {limit !== undefined && sorted.length > limit && (
        <button type="button" className="link-button" aria-expanded={!limited} onClick={() => setExpanded(!expanded)}>
          {limited ? `Show all ${sorted.length} rows` : `Show the first ${limit} rows only`}
        </button>
      )}
    </div>
  );
}
