// Model registry: versions, champion and its history, promotion/rollback behind a confirmation,
// a side-by-side comparison of two versions, and the operating point (what-if slider, alert
// budget, audited changes) of the selected version or else the champion.

import { useId, useMemo, useState } from 'react';
import { useApi, useAuth } from '../api/context';
import {
  ageSeconds,
  compareInt64,
  familyName,
  fmtDuration,
  fmtInt,
  fmtNum,
  fmtRankMetric,
  fmtTime,
  int64,
  nonZero,
  num0,
} from '../api/format';
import type { ClassificationMetrics, ModelVersion, PromoteResponse } from '../api/types';
import { PrCurveChart } from '../charts/PrCurveChart';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { describeError, ErrorBox, Loading } from '../components/Status';
import { MetricCards } from '../components/Summary';
import { useAsync } from '../hooks';
import { Fact } from '../components/Fact';
import { OperatingPointPanel } from '../components/OperatingPoint';

interface PendingAction {
  version: string;
  kind: 'promote' | 'rollback';
}

function modelMetric(m: ModelVersion, set: 'validation' | 'comparison'): ClassificationMetrics | undefined {
  return set === 'validation' ? m.manifest?.validationMetrics : m.manifest?.comparisonMetrics;
}

function Badge({ children }: { children: string }) {
  return <span className="badge">{children}</span>;
}

const COMPARE_ROWS: { name: string; get: (m: ClassificationMetrics | undefined) => string }[] = [
  { name: 'AUPRC', get: (m) => fmtRankMetric(m, m?.auprc) },
  { name: 'ROC-AUC', get: (m) => fmtRankMetric(m, m?.rocAuc) },
  { name: 'Precision', get: (m) => (m ? fmtNum(m.precision) : '—') },
  { name: 'Recall', get: (m) => (m ? fmtNum(m.recall) : '—') },
  { name: 'F1', get: (m) => (m ? fmtNum(m.f1) : '—') },
  { name: 'Accuracy', get: (m) => (m ? fmtNum(m.accuracy) : '—') },
  { name: 'Threshold', get: (m) => (m ? fmtNum(m.threshold, 3) : '—') },
  { name: 'Rows', get: (m) => (m ? fmtInt(m.rows) : '—') },
  { name: 'Frauds', get: (m) => (m ? fmtInt(m.positives) : '—') },
];

function Comparison({ a, b }: { a: ModelVersion; b: ModelVersion }) {
  const uid = useId();
  const va = `v${int64(a.version)}`;
  const vb = `v${int64(b.version)}`;
  const curve = (m: ModelVersion) => m.manifest?.comparisonMetrics?.prCurve?.length
    ? m.manifest.comparisonMetrics.prCurve
    : m.manifest?.validationMetrics?.prCurve;
  const curveSet = (m: ModelVersion) => (m.manifest?.comparisonMetrics?.prCurve?.length ? 'comparison' : 'validation');
  return (
    <section className="panel" aria-labelledby={`${uid}-h`}>
      <h2 id={`${uid}-h`}>
        Comparison: {va} vs {vb}
      </h2>
      <div className="grid-2">
        <div className="table-wrap">
          <table className="compare">
            <caption>Metrics side by side</caption>
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col" className="num">
                  {va} validation
                </th>
                <th scope="col" className="num">
                  {vb} validation
                </th>
                <th scope="col" className="num">
                  {va} comparison set
                </th>
                <th scope="col" className="num">
                  {vb} comparison set
                </th>
              </tr>
            </thead>
            <tbody>
              <tr>
                <th scope="row">Family</th>
                <td colSpan={2}>
                  {familyName(a.family)} / {familyName(b.family)}
                </td>
                <td colSpan={2}>
                  trained on: {a.manifest?.lineage?.description || '—'} / {b.manifest?.lineage?.description || '—'}
                </td>
              </tr>
              {COMPARE_ROWS.map((r) => (
                <tr key={r.name}>
                  <th scope="row">{r.name}</th>
                  <td className="num">{r.get(modelMetric(a, 'validation'))}</td>
                  <td className="num">{r.get(modelMetric(b, 'validation'))}</td>
                  <td className="num">{r.get(modelMetric(a, 'comparison'))}</td>
                  <td className="num">{r.get(modelMetric(b, 'comparison'))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <PrCurveChart
          title="Precision-recall curves overlaid"
          curves={[
            { name: `${va} (${curveSet(a)})`, points: curve(a) },
            { name: `${vb} (${curveSet(b)})`, points: curve(b), dashed: true },
          ]}
        />
      </div>
    </section>
  );
}

function ModelDetails({ model }: { model: ModelVersion }) {
  const uid = useId();
  const man = model.manifest ?? {};
  const lin = man.lineage ?? {};
  const params = Object.entries(man.params ?? {});
  return (
    <section className="panel" aria-labelledby={`${uid}-h`}>
      <h2 id={`${uid}-h`}>
        Version {int64(model.version)} ({familyName(model.family)})
      </h2>
      <dl className="facts">
        <Fact label="Created">{fmtTime(model.createdAt)}</Fact>
        <Fact label="Run">{nonZero(model.runId) ? <a href={`#/training/runs/${int64(model.runId)}`}>#{int64(model.runId)}</a> : 'imported'}</Fact>
        <Fact label="Threshold">{fmtNum(man.threshold, 4)}</Fact>
        <Fact label="Trained on">{lin.description || '—'}</Fact>
        <Fact label="Train rows (frauds)">
          {fmtInt(lin.trainRows)} ({fmtInt(lin.trainFrauds)})
        </Fact>
        <Fact label="Validation rows (frauds)">
          {fmtInt(lin.validationRows)} ({fmtInt(lin.validationFrauds)})
        </Fact>
        <Fact label="Time range (s)">
          {fmtInt(lin.timeMin)} – {fmtInt(lin.timeMax)}
        </Fact>
        <Fact label="Artifact sha256" className="mono wrap">{model.artifactSha256 || '—'}</Fact>
      </dl>
      {params.length > 0 && (
        <p>
          <strong>Parameters:</strong>{' '}
          {params.map(([k, v]) => (
            <code key={k} className="param">
              {k}={v}
            </code>
          ))}
        </p>
      )}
      <div className="table-wrap">
        <table>
          <caption>Operating points (validation rows)</caption>
          <thead>
            <tr>
              <th scope="col">Rule</th>
              <th scope="col" className="num">
                Threshold
              </th>
              <th scope="col" className="num">
                Precision
              </th>
              <th scope="col" className="num">
                Recall
              </th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td>F1-optimal (serving)</td>
              <td className="num">{fmtNum(man.threshold, 4)}</td>
              <td className="num">{fmtNum(man.validationMetrics?.precision ?? 0)}</td>
              <td className="num">{fmtNum(man.validationMetrics?.recall ?? 0)}</td>
            </tr>
            {(man.budgetThresholds ?? []).map((b) => (
              <tr key={String(b.alertFraction)}>
                <td>
                  Top {(100 * num0(b.alertFraction)).toFixed(1)}% of transactions ({fmtInt(b.alerts ?? 0)} alerts)
                </td>
                <td className="num">{fmtNum(b.threshold ?? 0, 4)}</td>
                <td className="num">{fmtNum(b.precision ?? 0)}</td>
                <td className="num">{fmtNum(b.recall ?? 0)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {man.comparisonMetrics && (
        <>
          <h3>On the comparison set</h3>
          <MetricCards metrics={man.comparisonMetrics} />
        </>
      )}
      {man.validationMetrics && (
        <>
          <h3>On the validation window</h3>
          <MetricCards metrics={man.validationMetrics} />
        </>
      )}
    </section>
  );
}

export function ModelsPage({ selected }: { selected?: string }) {
  const api = useApi();
  const { withAuth } = useAuth();
  const uid = useId();
  const data = useAsync(
    () => Promise.all([api.listModels(), api.getChampion(), api.championHistory()]),
    [api],
  );
  const [compare, setCompare] = useState<string[]>([]);
  const [pending, setPending] = useState<PendingAction | null>(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<PromoteResponse | null>(null);

  const [modelsRes, championRes, historyRes] = data.data ?? [];
  const models = useMemo(
    () => [...(modelsRes?.models ?? [])].sort((x, y) => compareInt64(y.version, x.version)),
    [modelsRes],
  );
  const champion = championRes?.model;
  const championVersion = champion ? int64(champion.version) : models.find((m) => m.isChampion)?.version;
  const champV = championVersion !== undefined ? int64(championVersion) : undefined;
  const history = useMemo(
    () => [...(historyRes?.changes ?? [])].sort((x, y) => compareInt64(y.id, x.id)),
    [historyRes],
  );
  const rollbackTo = history.length > 0 && nonZero(history[0].previousVersion) ? int64(history[0].previousVersion) : undefined;
  const since = championRes?.since || history[0]?.changedAt;
  const byVersion = (v: string) => models.find((m) => int64(m.version) === v);
  const selectedModel = selected ? byVersion(int64(selected)) : undefined;

  const toggleCompare = (v: string) =>
    setCompare((c) => (c.includes(v) ? c.filter((x) => x !== v) : [...c, v].slice(-2)));

  const confirm = async (reason: string) => {
    if (!pending) return;
    setBusy(true);
    setActionError(null);
    try {
      const res = await withAuth(() => api.promote(pending.version, reason));
      setOutcome(res);
      setPending(null);
      data.reload();
    } catch (err) {
      setActionError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const pendingModel = pending ? byVersion(pending.version) : undefined;
  const a = compare[0] ? byVersion(compare[0]) : undefined;
  const b = compare[1] ? byVersion(compare[1]) : undefined;

  return (
    <section aria-labelledby={`${uid}-h`}>
      <div className="panel-head">
        <h1 id={`${uid}-h`}>Models</h1>
        <button type="button" onClick={data.reload}>
          Refresh
        </button>
      </div>
      <ErrorBox error={data.error} title="Could not load the registry" />
      {data.loading && !data.data && <Loading what="the model registry" />}
      {outcome && (
        <div className={`notice ${outcome.reloaded === false ? 'warn' : 'success'}`} role="status">
          <strong>Champion is now v{int64(outcome.change?.version)}</strong>
          {nonZero(outcome.change?.previousVersion) && ` (was v${int64(outcome.change?.previousVersion)})`}.{' '}
          {outcome.reloaded === false ? 'Inference did not reload it yet. ' : 'Inference reloaded it. '}
          {outcome.message}
        </div>
      )}

      {data.data && (
        <section className="panel champion" aria-labelledby={`${uid}-champ`}>
          <h2 id={`${uid}-champ`}>Champion</h2>
          {champion ? (
            <div className="champion-row">
              <p>
                <Badge>champion</Badge> <strong>v{int64(champion.version)}</strong> — {familyName(champion.family)},
                comparison AUPRC{' '}
                <strong>{fmtRankMetric(champion.manifest?.comparisonMetrics, champion.manifest?.comparisonMetrics?.auprc)}</strong>
                {since && (
                  <>
                    , champion for {fmtDuration(ageSeconds(since))} (since {fmtTime(since)})
                  </>
                )}
                .
              </p>
              {rollbackTo && rollbackTo !== champV && (
                <button type="button" onClick={() => setPending({ version: rollbackTo, kind: 'rollback' })}>
                  Roll back to v{rollbackTo}
                </button>
              )}
            </div>
          ) : (
            <p className="muted">No champion yet: uploads are stored but not scored until a model is promoted.</p>
          )}
        </section>
      )}

      {models.length > 0 && (
        <section className="panel" aria-labelledby={`${uid}-reg`}>
          <h2 id={`${uid}-reg`}>Registry</h2>
          <p className="hint" id={`${uid}-cmp-hint`}>
            Tick two versions to compare them side by side.
          </p>
          <div className="table-wrap">
            <table className="registry">
              <caption className="visually-hidden">Registered model versions, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Compare</th>
                  <th scope="col">Version</th>
                  <th scope="col">Family</th>
                  <th scope="col" className="num">
                    Validation AUPRC
                  </th>
                  <th scope="col" className="num">
                    Comparison AUPRC
                  </th>
                  <th scope="col">Trained on</th>
                  <th scope="col" className="num">
                    Train rows
                  </th>
                  <th scope="col">Created</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {models.map((m) => {
                  const v = int64(m.version);
                  const isChamp = v === champV || (!champV && m.isChampion);
                  const older = champV !== undefined && compareInt64(v, champV) < 0;
                  return (
                    <tr key={v} className={isChamp ? 'is-champion' : selected && int64(selected) === v ? 'selected' : undefined}>
                      <td>
                        <input
                          type="checkbox"
                          aria-label={`Compare version ${v}`}
                          aria-describedby={`${uid}-cmp-hint`}
                          checked={compare.includes(v)}
                          onChange={() => toggleCompare(v)}
                        />
                      </td>
                      <td>
                        <a href={`#/models?v=${v}`}>v{v}</a> {isChamp && <Badge>champion</Badge>}
                      </td>
                      <td>{familyName(m.family)}</td>
                      <td className="num">{fmtRankMetric(m.manifest?.validationMetrics, m.manifest?.validationMetrics?.auprc)}</td>
                      <td className="num">{fmtRankMetric(m.manifest?.comparisonMetrics, m.manifest?.comparisonMetrics?.auprc)}</td>
                      <td className="wrap">{m.manifest?.lineage?.description || '—'}</td>
                      <td className="num">{fmtInt(m.manifest?.lineage?.trainRows)}</td>
                      <td>{fmtTime(m.createdAt)}</td>
                      <td>
                        {!isChamp && (
                          <button
                            type="button"
                            onClick={() => {
                              setActionError(null);
                              setPending({ version: v, kind: older ? 'rollback' : 'promote' });
                            }}
                          >
                            {older ? `Roll back to v${v}` : `Promote v${v}`}
                          </button>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        </section>
      )}
      {data.data && models.length === 0 && <p className="muted">No model versions registered yet. Start a training run.</p>}

      {a && b && <Comparison a={a} b={b} />}
      {selectedModel && <ModelDetails model={selectedModel} />}
      {(selectedModel || champion) && (
        <OperatingPointPanel
          key={int64((selectedModel ?? champion)!.version)}
          version={int64((selectedModel ?? champion)!.version)}
        />
      )}

      {history.length > 0 && (
        <section className="panel" aria-labelledby={`${uid}-hist`}>
          <h2 id={`${uid}-hist`}>Champion history</h2>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Champion changes, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Champion</th>
                  <th scope="col">Previous</th>
                  <th scope="col">Reason</th>
                  <th scope="col">By</th>
                </tr>
              </thead>
              <tbody>
                {history.map((c) => (
                  <tr key={int64(c.id)}>
                    <td>{fmtTime(c.changedAt)}</td>
                    <td>v{int64(c.version)}</td>
                    <td>{nonZero(c.previousVersion) ? `v${int64(c.previousVersion)}` : '—'}</td>
                    <td className="wrap">{c.reason || '—'}</td>
                    <td>{c.actor || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}

      {pending && (
        <ConfirmDialog
          title={pending.kind === 'rollback' ? `Roll back to v${pending.version}?` : `Promote v${pending.version}?`}
          confirmLabel={pending.kind === 'rollback' ? `Roll back to v${pending.version}` : `Promote v${pending.version}`}
          defaultReason={pending.kind === 'rollback' ? 'rollback from the web UI' : 'promoted from the web UI'}
          busy={busy}
          error={actionError}
          onConfirm={confirm}
          onCancel={() => {
            if (!busy) setPending(null);
          }}
        >
          <p>
            Version {pending.version}
            {pendingModel ? ` (${familyName(pendingModel.family)})` : ''} becomes the champion and the inference
            service reloads it; every new upload is scored by it.
            {champV ? ` The current champion is v${champV}.` : ''}
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
