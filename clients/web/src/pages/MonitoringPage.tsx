// Monitoring: service health, prediction volume and fraud rate per upload, realised performance
// per model version (RealisedPerformance), latency and reload counters, the champion and its age
// (GET /api/v1/monitoring).

import { useId, useMemo, useState } from 'react';
import { useApi } from '../api/context';
import { ageSeconds, compareInt64, familyName, fmtDuration, fmtInt, fmtNum, fmtRankMetric, fmtTime, int64, num, num0 } from '../api/format';
import type { MonitoredService, MonitoringUpload } from '../api/types';
import { BarChart } from '../charts/BarChart';
import { LineChart } from '../charts/LineChart';
import { ErrorBox, Loading } from '../components/Status';
import { useAsync } from '../hooks';
import { Fact } from '../components/Fact';
import { RealisedPerformance } from './RealisedPerformance';

/** Metric names worth showing up front: latency, reloads, request and error counters. */
export const KEY_METRIC = /(latency|duration|seconds|reload|requests?_total|errors?_total|failures?_total|in_flight|uptime)/i;

function KeyMetrics({ services }: { services: MonitoredService[] }) {
  const rows = services.flatMap((s) =>
    Object.entries(s.metrics ?? {})
      .filter(([k]) => KEY_METRIC.test(k))
      .map(([k, v]) => ({ service: s.name ?? '?', name: k, value: num(v) })),
  );
  if (rows.length === 0) return <p className="muted">No latency or reload counters reported.</p>;
  return (
    <div className="table-wrap">
      <table>
        <caption>Latency, reload and request counters</caption>
        <thead>
          <tr>
            <th scope="col">Service</th>
            <th scope="col">Metric</th>
            <th scope="col" className="num">
              Value
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.service}/${r.name}`}>
              <td>{r.service}</td>
              <td className="mono wrap">{r.name}</td>
              <td className="num">{Number.isInteger(r.value) ? fmtInt(r.value) : fmtNum(r.value, 4)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function AllMetrics({ services }: { services: MonitoredService[] }) {
  const [filter, setFilter] = useState('');
  const f = filter.trim().toLowerCase();
  return (
    <details className="panel">
      <summary>All metrics</summary>
      <label className="field inline">
        <span>Filter</span>
        <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="metric name" />
      </label>
      {services.map((s) => {
        const entries = Object.entries(s.metrics ?? {})
          .filter(([k]) => !f || k.toLowerCase().includes(f))
          .sort(([a], [b]) => a.localeCompare(b));
        return (
          <div className="table-wrap" key={s.name}>
            <table>
              <caption>{s.name}</caption>
              <tbody>
                {entries.length === 0 ? (
                  <tr>
                    <td className="muted">no matching metrics</td>
                  </tr>
                ) : (
                  entries.map(([k, v]) => (
                    <tr key={k}>
                      <th scope="row" className="mono wrap">
                        {k}
                      </th>
                      <td className="num">{fmtNum(v, Number.isInteger(num(v)) ? 0 : 4)}</td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
        );
      })}
    </details>
  );
}

function uploadTime(u: MonitoringUpload): string | undefined {
  return u.time || u.receivedAt;
}

export function MonitoringPage() {
  const api = useApi();
  const uid = useId();
  const mon = useAsync(() => api.monitoring(), [api], 15000);
  const history = useAsync(() => api.championHistory(), [api]);
  const services = mon.data?.services ?? [];
  const uploads = useMemo(
    () => [...(mon.data?.uploads ?? [])].sort((a, b) => compareInt64(a.id, b.id) || (uploadTime(a) ?? '').localeCompare(uploadTime(b) ?? '')),
    [mon.data],
  );
  const champion = mon.data?.champion;
  const lastChange = [...(history.data?.changes ?? [])].sort((a, b) => compareInt64(b.id, a.id))[0];
  const since =
    mon.data?.championSince ||
    (lastChange && champion && int64(lastChange.version) === int64(champion.version) ? lastChange.changedAt : undefined) ||
    champion?.createdAt;

  const labels = uploads.map((u, i) => (u.id !== undefined ? `#${int64(u.id)}` : `${i + 1}`));
  const totalRows = uploads.reduce((a, u) => a + num0(u.rows), 0);
  const totalPred = uploads.reduce((a, u) => a + num0(u.predictedFrauds), 0);
  const rate = (u: MonitoringUpload, v: number) => (num0(u.rows) > 0 ? v / num0(u.rows) : NaN);

  return (
    <section aria-labelledby={`${uid}-h`}>
      <div className="panel-head">
        <h1 id={`${uid}-h`}>Monitoring</h1>
        <button type="button" onClick={mon.reload}>
          Refresh
        </button>
      </div>
      <ErrorBox error={mon.error} title="Could not load monitoring data" />
      {mon.loading && !mon.data && <Loading what="monitoring data" />}
      {mon.data && (
        <>
          <div className="grid-2">
            <section className="panel" aria-labelledby={`${uid}-svc`}>
              <h2 id={`${uid}-svc`}>Service health</h2>
              <ul className="health-list">
                {services.map((s) => (
                  <li key={s.name} className={s.healthy ? 'ok' : 'bad'}>
                    <span className="dot" aria-hidden="true" />
                    <strong>{s.name}</strong> {s.healthy ? 'healthy' : 'unhealthy'}
                  </li>
                ))}
                {services.length === 0 && <li className="muted">No services reported.</li>}
              </ul>
            </section>
            <section className="panel" aria-labelledby={`${uid}-champ`}>
              <h2 id={`${uid}-champ`}>Champion</h2>
              {champion ? (
                <dl className="facts">
                  <Fact label="Version">
                    <a href={`#/models?v=${int64(champion.version)}`}>v{int64(champion.version)}</a>
                  </Fact>
                  <Fact label="Family">{familyName(champion.family)}</Fact>
                  <Fact label="Champion for">{fmtDuration(ageSeconds(since))}</Fact>
                  <Fact label="Since">{fmtTime(since)}</Fact>
                  <Fact label="Comparison AUPRC">
                    {fmtRankMetric(champion.manifest?.comparisonMetrics, champion.manifest?.comparisonMetrics?.auprc)}
                  </Fact>
                </dl>
              ) : (
                <p className="muted">No champion yet.</p>
              )}
            </section>
          </div>
          <section className="panel" aria-labelledby={`${uid}-vol`}>
            <h2 id={`${uid}-vol`}>Predictions over uploads</h2>
            <p>
              {fmtInt(uploads.length)} uploads, {fmtInt(totalRows)} rows scored, {fmtInt(totalPred)} predicted frauds
              {uploads.length > 0 && uploadTime(uploads[uploads.length - 1]) && (
                <> (latest {fmtTime(uploadTime(uploads[uploads.length - 1]))})</>
              )}
              .
            </p>
            <div className="grid-2">
              <BarChart
                title="Prediction volume per upload"
                categories={labels}
                series={[{ name: 'rows', values: uploads.map((u) => num0(u.rows)) }]}
                xLabel="Upload"
                yLabel="Rows"
                emptyText="No uploads yet."
              />
              <LineChart
                title="Fraud rate per upload"
                xLabel="Upload (in order)"
                yLabel="Fraud rate (%)"
                integerX
                xFormat={(v) => labels[v - 1] ?? ''}
                yFormat={(v) => v.toFixed(2)}
                emptyText="No uploads yet."
                series={[
                  {
                    name: 'predicted',
                    points: uploads.map((u, i) => ({ x: i + 1, y: rate(u, num0(u.predictedFrauds)) * 100 })),
                    markers: true,
                  },
                  {
                    name: 'labelled frauds',
                    points: uploads.map((u, i) => ({ x: i + 1, y: rate(u, num0(u.frauds)) * 100 })),
                    dashed: true,
                    markers: true,
                  },
                ]}
              />
            </div>
          </section>
          <RealisedPerformance />
          <section className="panel" aria-labelledby={`${uid}-ctr`}>
            <h2 id={`${uid}-ctr`}>Latency and reload counters</h2>
            <KeyMetrics services={services} />
          </section>
          <AllMetrics services={services} />
        </>
      )}
    </section>
  );
}
