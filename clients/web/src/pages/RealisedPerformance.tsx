// Realised performance per served model version over time (GET /api/v1/monitoring/realised):
// precision and recall of each version's own decisions on the labels known by now, per day of
// Time or per upload, with the periods where the serving version changed marked, the champion
// history, and a table with the share of rows still unlabelled.

import { useId, useState } from 'react';
import { useApi } from '../api/context';
import { compareInt64, fmtInt, fmtNum, fmtPct, fmtTime, int64, num, num0 } from '../api/format';
import type { ChampionChange, RealisedMetrics } from '../api/types';
import { LineChart, type ChartEvent, type Series } from '../charts/LineChart';
import { ErrorBox, Loading } from '../components/Status';
import { useAsync } from '../hooks';

/**
 * The periods where the version that scored most of a period's rows differs from the previous
 * period's: one event per change, labelled with the new version.
 */
export function servedVersionChanges(metrics: RealisedMetrics[]): ChartEvent[] {
  const top = new Map<number, { version: string; rows: number }>();
  for (const m of metrics) {
    const p = num(m.period);
    const cur = top.get(p);
    if (!cur || num0(m.rowsScored) > cur.rows) top.set(p, { version: int64(m.modelVersion), rows: num0(m.rowsScored) });
  }
  const periods = [...top.keys()].sort((a, b) => a - b);
  const out: ChartEvent[] = [];
  let previous: string | undefined;
  for (const p of periods) {
    const v = top.get(p)!.version;
    if (previous !== undefined && v !== previous) out.push({ x: p, label: `v${v}` });
    previous = v;
  }
  return out;
}

/** One precision and one recall series per model version, x = period. */
export function realisedSeries(metrics: RealisedMetrics[]): Series[] {
  const versions = [...new Set(metrics.map((m) => int64(m.modelVersion)))].sort((a, b) => compareInt64(a, b));
  return versions.flatMap((v) => {
    const rows = metrics.filter((m) => int64(m.modelVersion) === v && num0(m.rowsLabelled) > 0);
    rows.sort((a, b) => num(a.period) - num(b.period));
    return [
      { name: `v${v} precision`, points: rows.map((m) => ({ x: num(m.period), y: num0(m.precision) })), markers: true },
      {
        name: `v${v} recall`,
        points: rows.map((m) => ({ x: num(m.period), y: num0(m.recall) })),
        markers: true,
        dashed: true,
      },
    ];
  });
}

function ChampionChanges({ changes }: { changes: ChampionChange[] }) {
  if (changes.length === 0) return <p className="muted">No champion changes yet.</p>;
  const sorted = [...changes].sort((a, b) => compareInt64(a.id, b.id));
  return (
    <ul className="champion-changes">
      {sorted.map((c) => (
        <li key={int64(c.id)}>
          {fmtTime(c.changedAt)}: v{int64(c.version)}
          {num0(c.previousVersion) > 0 && <> (was v{int64(c.previousVersion)})</>}
          {c.reason && <span className="muted"> — {c.reason}</span>}
        </li>
      ))}
    </ul>
  );
}

export function RealisedPerformance() {
  const api = useApi();
  const uid = useId();
  const [by, setBy] = useState<'day' | 'upload'>('day');
  const [k, setK] = useState(100);
  const realised = useAsync(() => api.realised(by, k), [api, by, k], 60000);
  const history = useAsync(() => api.championHistory(), [api]);
  const metrics = realised.data?.metrics ?? [];
  const periodName = by === 'day' ? 'Day' : 'Upload';
  const table = [...metrics].sort((a, b) => num(a.period) - num(b.period) || compareInt64(a.modelVersion, b.modelVersion));

  return (
    <section className="panel" aria-labelledby={`${uid}-h`}>
      <div className="panel-head">
        <h2 id={`${uid}-h`}>Realised performance per model version</h2>
        <label className="field inline">
          <span>Period</span>
          <select value={by} onChange={(e) => setBy(e.target.value === 'upload' ? 'upload' : 'day')}>
            <option value="day">day of Time</option>
            <option value="upload">upload</option>
          </select>
        </label>
        <label className="field inline">
          <span>k</span>
          <input
            type="number"
            min={1}
            max={100000}
            value={k}
            onChange={(e) => setK(Math.max(1, Math.min(100000, Math.floor(Number(e.target.value) || 100))))}
          />
        </label>
      </div>
      <p className="muted">
        Each version's own decisions on the rows labelled so far (labels arrive later through feedback). Dotted lines mark
        where the serving version changed.
      </p>
      <ErrorBox error={realised.error} title="Could not load realised metrics" />
      {realised.loading && !realised.data && <Loading what="realised metrics" />}
      {realised.data && (
        <>
          <LineChart
            title={`Realised precision and recall per ${periodName.toLowerCase()}`}
            xLabel={periodName}
            yLabel="Precision / recall"
            integerX
            yDomain={[0, 1]}
            xFormat={(v) => (by === 'day' ? `day ${v}` : `#${v}`)}
            yFormat={(v) => v.toFixed(2)}
            series={realisedSeries(metrics)}
            events={servedVersionChanges(metrics)}
            emptyText="No labelled predictions yet."
          />
          <h3>Champion history</h3>
          <ChampionChanges changes={history.data?.changes ?? []} />
          <div className="table-wrap">
            <table>
              <caption>Realised metrics (precision@{realised.data.k ?? k} among each group's top scores)</caption>
              <thead>
                <tr>
                  <th scope="col">{periodName}</th>
                  <th scope="col">Version</th>
                  <th scope="col" className="num">Scored</th>
                  <th scope="col" className="num">Labelled</th>
                  <th scope="col" className="num">Unlabelled</th>
                  <th scope="col" className="num">Alerts</th>
                  <th scope="col" className="num">True alerts</th>
                  <th scope="col" className="num">Precision</th>
                  <th scope="col" className="num">Recall</th>
                  <th scope="col" className="num">AUPRC</th>
                  <th scope="col" className="num">Precision@k</th>
                </tr>
              </thead>
              <tbody>
                {table.length === 0 ? (
                  <tr>
                    <td colSpan={11} className="muted">
                      No stored predictions yet.
                    </td>
                  </tr>
                ) : (
                  table.map((m) => (
                    <tr key={`${int64(m.modelVersion)}/${int64(m.period)}`}>
                      <td>{int64(m.period)}</td>
                      <td>v{int64(m.modelVersion)}</td>
                      <td className="num">{fmtInt(m.rowsScored)}</td>
                      <td className="num">{fmtInt(m.rowsLabelled)}</td>
                      <td className="num">{fmtPct(m.unlabelledShare, 1)}</td>
                      <td className="num">{fmtInt(m.alerts)}</td>
                      <td className="num">{fmtInt(m.trueAlerts)}</td>
                      <td className="num">{num0(m.alertsLabelled) > 0 ? fmtNum(m.precision, 3) : '–'}</td>
                      <td className="num">{num0(m.frauds) > 0 ? fmtNum(m.recall, 3) : '–'}</td>
                      <td className="num">{num0(m.frauds) > 0 ? fmtNum(m.auprc, 3) : '–'}</td>
                      <td className="num">{num0(m.topKLabelled) > 0 ? fmtNum(m.precisionAtK, 3) : '–'}</td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
