// Renders an UploadSummary: counts, metrics, confusion matrix, PR curve, score histogram, most
// suspicious rows, data report with drift. Used for fresh uploads, stored uploads and the demo.

import { useId } from 'react';
import { fmtBytes, fmtInt, fmtNum, fmtPct, fmtRankMetric, int64, modeName, nonZero, num, num0 } from '../api/format';
import type { BudgetOutcome, ClassificationMetrics, DataReport, FeatureDrift, RowError, SuspiciousRow, UploadSummary } from '../api/types';
import { PrCurveChart } from '../charts/PrCurveChart';
import { ScoreHistogram } from '../charts/ScoreHistogram';
import { SortableTable } from './SortableTable';
import { Fact } from './Fact';

export function ErrorTable({ errors, truncated }: { errors: RowError[]; truncated?: boolean }) {
  const uid = useId();
  return (
    <section aria-labelledby={`${uid}-errors`} className="panel">
      <h3 id={`${uid}-errors`}>Validation errors</h3>
      <div className="table-wrap">
        <table className="error-table">
          <caption>
            {errors.length} {errors.length === 1 ? 'problem' : 'problems'} listed
            {truncated ? ' (more exist; only the first ones are shown)' : ''}
          </caption>
          <thead>
            <tr>
              <th scope="col" className="num">
                Line
              </th>
              <th scope="col">Column</th>
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {errors.map((e, i) => (
              <tr key={i}>
                <td className="num">{nonZero(e.line) ? fmtInt(e.line) : 'file'}</td>
                <td>
                  {e.column || '—'}
                  {e.columnIndex ? <span className="muted"> (#{e.columnIndex})</span> : null}
                </td>
                <td>{e.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function MetricCards({ metrics }: { metrics: ClassificationMetrics }) {
  const ci =
    !metrics.singleClass && num0(metrics.auprcCiHigh) > 0
      ? `95% CI ${fmtNum(metrics.auprcCiLow, 3)}–${fmtNum(metrics.auprcCiHigh, 3)}`
      : undefined;
  const cards: { name: string; value: string; note?: string }[] = [
    { name: 'AUPRC', value: fmtRankMetric(metrics, metrics.auprc), note: ci },
    { name: 'ROC-AUC', value: fmtRankMetric(metrics, metrics.rocAuc) },
    { name: 'Precision', value: fmtNum(metrics.precision) },
    { name: 'Recall', value: fmtNum(metrics.recall) },
    { name: 'F1', value: fmtNum(metrics.f1) },
    { name: 'Accuracy', value: fmtNum(metrics.accuracy) },
  ];
  return (
    <div>
      <dl className="cards" aria-label="Metrics">
        {cards.map((c) => (
          <div className="card" key={c.name} data-metric={c.name}>
            <dt>{c.name}</dt>
            <dd>
              <span className="card-value">{c.value}</span>
              {c.note && <span className="card-note">{c.note}</span>}
            </dd>
          </div>
        ))}
      </dl>
      <p className="muted">
        At threshold {fmtNum(metrics.threshold, 3)} on {fmtInt(metrics.rows)} rows with {fmtInt(metrics.positives)}{' '}
        frauds{metrics.weighted ? ' (weighted)' : ''}.
        {metrics.singleClass && ' The labels hold one class only, so AUPRC and ROC-AUC are undefined.'}
      </p>
    </div>
  );
}

export function ConfusionMatrixTable({ metrics }: { metrics: ClassificationMetrics }) {
  const c = metrics.confusion ?? {};
  return (
    <div className="table-wrap">
      <table className="confusion">
        <caption>Confusion matrix</caption>
        <thead>
          <tr>
            <td />
            <th scope="col">Predicted fraud</th>
            <th scope="col">Predicted normal</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <th scope="row">Actual fraud</th>
            <td className="num good">
              <span className="cm-label">TP</span> {fmtInt(c.truePositives ?? 0)}
            </td>
            <td className="num bad">
              <span className="cm-label">FN</span> {fmtInt(c.falseNegatives ?? 0)}
            </td>
          </tr>
          <tr>
            <th scope="row">Actual normal</th>
            <td className="num bad">
              <span className="cm-label">FP</span> {fmtInt(c.falsePositives ?? 0)}
            </td>
            <td className="num good">
              <span className="cm-label">TN</span> {fmtInt(c.trueNegatives ?? 0)}
            </td>
          </tr>
        </tbody>
      </table>
    </div>
  );
}

function PrecisionAtKTable({ metrics }: { metrics: ClassificationMetrics }) {
  const list = metrics.precisionAtK ?? [];
  if (list.length === 0) return null;
  return (
    <div className="table-wrap">
      <table>
        <caption>Precision among the top-k scores</caption>
        <thead>
          <tr>
            <th scope="col" className="num">
              k
            </th>
            <th scope="col" className="num">
              Precision
            </th>
          </tr>
        </thead>
        <tbody>
          {list.map((p) => (
            <tr key={p.k}>
              <td className="num">{fmtInt(p.k)}</td>
              <td className="num">{fmtNum(p.precision)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function SuspiciousTable({ rows, labelled }: { rows: SuspiciousRow[]; labelled: boolean }) {
  return (
    <SortableTable
      caption={`Most suspicious transactions (${rows.length})`}
      hideCaption
      rows={rows}
      rowKey={(r, i) => `${int64(r.line)}-${i}`}
      initialSort={{ key: 'score', dir: 'desc' }}
      rowClassName={(r) => (r.label === 1 ? 'is-fraud' : undefined)}
      columns={[
        { key: 'line', header: 'Line', numeric: true, value: (r) => num(r.line), render: (r) => fmtInt(r.line) },
        { key: 'score', header: 'Score', numeric: true, value: (r) => num(r.score), render: (r) => fmtNum(r.score) },
        { key: 'time', header: 'Time (s)', numeric: true, value: (r) => num(r.time), render: (r) => fmtInt(r.time) },
        {
          key: 'amount',
          header: 'Amount',
          numeric: true,
          value: (r) => num(r.amount),
          render: (r) => fmtNum(r.amount, 2),
        },
        ...(labelled
          ? [
              {
                key: 'label',
                header: 'Label',
                value: (r: SuspiciousRow) => r.label ?? -1,
                render: (r: SuspiciousRow) => (r.label === 1 ? 'fraud' : r.label === 0 ? 'normal' : '—'),
              },
            ]
          : []),
      ]}
    />
  );
}

// minRows: the server's fewest rows for a verdict (0 for summaries stored before verdicts had one).
export function DriftTable({ drift, minRows = 0 }: { drift: FeatureDrift[]; minRows?: number }) {
  return (
    <SortableTable
      caption="Drift against the champion's training data (PSI ≥ 0.25 is flagged)"
      rows={drift}
      rowKey={(d) => d.feature ?? ''}
      initialSort={{ key: 'psi', dir: 'desc' }}
      limit={10}
      rowClassName={(d) => (d.flagged ? 'flagged' : undefined)}
      columns={[
        { key: 'feature', header: 'Feature', value: (d) => d.feature ?? '', render: (d) => d.feature },
        { key: 'psi', header: 'PSI', numeric: true, value: (d) => num(d.psi), render: (d) => fmtNum(d.psi, 3) },
        { key: 'ks', header: 'KS', numeric: true, value: (d) => num(d.ks), render: (d) => fmtNum(d.ks, 3) },
        {
          key: 'flagged',
          header: 'Shift',
          value: (d) => (d.flagged ? 1 : 0),
          render: (d) =>
            d.flagged ? <strong className="flag">⚠ large</strong> : !d.judged && minRows > 0 ? <span className="muted">too few rows</span> : 'ok',
        },
      ]}
    />
  );
}

export function DataReportView({ report }: { report: DataReport }) {
  const uid = useId();
  const drift = report.drift ?? [];
  return (
    <section className="panel" aria-labelledby={`${uid}-report`}>
      <h3 id={`${uid}-report`}>Data report</h3>
      <dl className="facts">
        <Fact label="Rows">{fmtInt(report.rows)}</Fact>
        <Fact label="Labelled rows">{fmtInt(report.labelledRows)}</Fact>
        <Fact label="Frauds">{fmtInt(report.frauds)}</Fact>
        <Fact label="Fraud rate">{num0(report.labelledRows) > 0 ? fmtPct(report.fraudRate, 3) : 'n/a (unlabelled)'}</Fact>
        <Fact label="Time range (s)">
          {fmtInt(report.timeMin)} – {fmtInt(report.timeMax)}
        </Fact>
        <Fact label="Time order">{report.timeMonotonic ? 'non-decreasing' : `${fmtInt(report.timeDecreases)} decreases`}</Fact>
        <Fact label="Amount mean / max">
          {fmtNum(report.amountMean, 2)} / {fmtNum(report.amountMax, 2)}
        </Fact>
        <div>
          <dt>Drifting features</dt>
          <dd className={(report.driftFlagged ?? 0) > 0 ? 'flag' : undefined}>
            {drift.length > 0 && num0(report.driftMinRows) > 0 && drift.every((d) => !d.judged)
              ? `too few rows (fewer than ${fmtInt(report.driftMinRows)})`
              : `${report.driftFlagged ?? 0} of ${drift.length}`}
          </dd>
        </div>
      </dl>
      {drift.length > 0 ? <DriftTable drift={drift} minRows={num0(report.driftMinRows)} /> : <p className="muted">No drift figures (no champion reference).</p>}
      {report.driftNote ? <p className="muted">{report.driftNote}.</p> : null}
    </section>
  );
}

/** The whole result of one upload. `headingLevel` 2 for a page, 3 inside a list. */
/** The scoring model's alert budgets on this upload, beside what each achieved on validation. */
export function BudgetTable({ budgets, version }: { budgets: BudgetOutcome[]; version: string }) {
  return (
    <div className="table-wrap">
      <table>
        <caption>Alert budgets of model v{version} on this upload</caption>
        <thead>
          <tr>
            <th scope="col">Budget</th>
            <th scope="col" className="num">
              Threshold
            </th>
            <th scope="col" className="num">
              Alerts here
            </th>
            <th scope="col" className="num">
              Precision here
            </th>
            <th scope="col" className="num">
              Recall here
            </th>
            <th scope="col" className="num">
              Validation precision
            </th>
            <th scope="col" className="num">
              Validation recall
            </th>
          </tr>
        </thead>
        <tbody>
          {budgets.map((b) => (
            <tr key={String(b.alertFraction)}>
              <td>Top {(100 * num0(b.alertFraction)).toFixed(1)}%</td>
              <td className="num">{fmtNum(b.threshold ?? 0, 4)}</td>
              <td className="num">
                {fmtInt(b.alerts ?? 0)} ({fmtPct(b.alertRate ?? 0)})
              </td>
              <td className="num">{b.labelled ? fmtNum(b.precision ?? 0) : '—'}</td>
              <td className="num">{b.labelled ? fmtNum(b.recall ?? 0) : '—'}</td>
              <td className="num">{fmtNum(b.validationPrecision ?? 0)}</td>
              <td className="num">{fmtNum(b.validationRecall ?? 0)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function SummaryView({ summary, title }: { summary: UploadSummary; title?: string }) {
  const uid = useId();
  const m = summary.metrics;
  const labelled = !!m || num0(summary.report?.labelledRows) > 0;
  const errors = summary.errors ?? [];
  const hist = summary.scoreHistogram ?? [];
  const top = summary.topSuspicious ?? [];
  return (
    <article className="summary" aria-label={title ?? 'Upload result'}>
      {title && <h2>{title}</h2>}
      {nonZero(summary.duplicateOf) && (
        <div className="notice info" role="status">
          This file was uploaded before as{' '}
          <a href={`#/uploads/${int64(summary.duplicateOf)}`}>upload #{int64(summary.duplicateOf)}</a>; nothing new
          was stored.
        </div>
      )}
      {summary.scored === false && (
        <div className="notice warn" role="status">
          <strong>Not scored:</strong> {summary.scoringMessage || 'no model was available to score the rows.'}
        </div>
      )}
      <dl className="facts counts" aria-label="Counts">
        <Fact label="File">{summary.fileName || '—'}</Fact>
        {nonZero(summary.uploadId) && (
          <Fact label="Upload">
            <a href={`#/uploads/${int64(summary.uploadId)}`}>#{int64(summary.uploadId)}</a>
          </Fact>
        )}
        <Fact label="Mode">{modeName(summary.mode)}</Fact>
        <Fact label="Rows">{fmtInt(summary.rowsTotal)}</Fact>
        <Fact label="Accepted">{fmtInt(summary.rowsAccepted)}</Fact>
        <Fact label="Rejected">{fmtInt(summary.rowsRejected)}</Fact>
        <Fact label="Predicted frauds">{summary.scored === false ? '—' : fmtInt(summary.predictedFrauds)}</Fact>
        <Fact label="Model version">
          {summary.scored !== false && nonZero(summary.modelVersion) ? (
            <a href={`#/models?v=${int64(summary.modelVersion)}`}>v{int64(summary.modelVersion)}</a>
          ) : (
            '—'
          )}
        </Fact>
        <Fact label="Size">{fmtBytes(summary.bytes)}</Fact>
        <Fact label="Took">{Number.isFinite(num(summary.elapsedSeconds)) ? `${num(summary.elapsedSeconds).toFixed(2)} s` : '—'}</Fact>
      </dl>

      {errors.length > 0 && <ErrorTable errors={errors} truncated={summary.errorsTruncated} />}

      {m ? (
        <section className="panel" aria-labelledby={`${uid}-metrics`}>
          <h3 id={`${uid}-metrics`}>Prediction quality</h3>
          <MetricCards metrics={m} />
          <div className="grid-2">
            <PrCurveChart curves={[{ name: `v${int64(summary.modelVersion)}`, points: m.prCurve }]} />
            <div>
              <ConfusionMatrixTable metrics={m} />
              <PrecisionAtKTable metrics={m} />
            </div>
          </div>
        </section>
      ) : (
        summary.scored !== false && (
          <p className="muted">The file had no labels: scores and decisions only, no quality metrics.</p>
        )
      )}

      {hist.length > 0 && (
        <section className="panel" aria-labelledby={`${uid}-hist`}>
          <h3 id={`${uid}-hist`}>Scores</h3>
          <ScoreHistogram bins={hist} />
        </section>
      )}

      {(summary.budgets ?? []).length > 0 && (
        <section className="panel" aria-labelledby={`${uid}-budgets`}>
          <h3 id={`${uid}-budgets`}>Operating points</h3>
          <BudgetTable budgets={summary.budgets ?? []} version={int64(summary.modelVersion)} />
        </section>
      )}

      {top.length > 0 && (
        <section className="panel" aria-labelledby={`${uid}-top`}>
          <h3 id={`${uid}-top`}>Most suspicious transactions ({top.length})</h3>
          <SuspiciousTable rows={top} labelled={labelled} />
        </section>
      )}

      {summary.report && <DataReportView report={summary.report} />}
    </article>
  );
}
