// Training: start a run, follow it live (Server-Sent Events), browse runs and their candidates,
// and the replay chart of AUPRC on the comparison set per model version.

import { useEffect, useId, useMemo, useState, type FormEvent } from 'react';
import { runFinished } from '../api/client';
import { useApi, useAuth } from '../api/context';
import {
  compareInt64,
  familyName,
  fmtBytes,
  fmtInt,
  fmtNum,
  fmtRankMetric,
  fmtTime,
  int64,
  nonZero,
  num,
  num0,
  runStatusName,
} from '../api/format';
import type { Candidate, Double, ModelVersion, TrainingRun } from '../api/types';
import { LineChart } from '../charts/LineChart';
import { describeError, ErrorBox, Loading, ProgressBar } from '../components/Status';
import { useAsync } from '../hooks';
import { navigate } from '../router';
import { Fact } from '../components/Fact';

export const FAMILIES: { id: string; label: string }[] = [
  { id: 'logreg', label: 'Logistic regression' },
  { id: 'mlp', label: 'Multi-layer perceptron' },
  { id: 'xgboost', label: 'Gradient-boosted trees (XGBoost)' },
  { id: 'random_forest', label: 'Random forest' },
  { id: 'ensemble', label: 'Ensemble of the best two families' },
];

function StatusBadge({ run }: { run: TrainingRun }) {
  const s = runStatusName(run.status);
  return <span className={`status status-${s}`}>{s}</span>;
}

function StartRunForm({ onStarted }: { onStarted: (run: TrainingRun) => void }) {
  const api = useApi();
  const { withAuth } = useAuth();
  const [families, setFamilies] = useState<string[]>(FAMILIES.map((f) => f.id));
  const [description, setDescription] = useState('');
  const [noPromote, setNoPromote] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (families.length === 0) {
      setError('Choose at least one model family.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const res = await withAuth(() =>
        api.startRun({
          families,
          description: description.trim() || undefined,
          noPromote: noPromote || undefined,
          trigger: 'manual',
        }),
      );
      if (res.run) onStarted(res.run);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="panel" onSubmit={submit} aria-label="Start a training run">
      <h2>Start a run</h2>
      <fieldset className="checks">
        <legend>Model families</legend>
        {FAMILIES.map((f) => (
          <label key={f.id}>
            <input
              type="checkbox"
              name="family"
              value={f.id}
              checked={families.includes(f.id)}
              onChange={(e) =>
                setFamilies((list) => (e.target.checked ? [...list, f.id] : list.filter((x) => x !== f.id)))
              }
            />{' '}
            {f.label}
          </label>
        ))}
      </fieldset>
      <div className="form-row">
        <label className="field grow">
          <span>Description (recorded in the lineage)</span>
          <input type="text" value={description} onChange={(e) => setDescription(e.target.value)} placeholder="optional" />
        </label>
        <label className="check">
          <input type="checkbox" checked={noPromote} onChange={(e) => setNoPromote(e.target.checked)} /> Register only,
          never promote
        </label>
      </div>
      {error && (
        <p className="notice error" role="alert">
          {error}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Starting…' : 'Start training'}
        </button>
      </div>
    </form>
  );
}

// +0.0123 / -0.0100 (a difference's sign always shown).
function fmtSigned(v: Double | undefined): string {
  const n = num0(v);
  return `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(4)}`;
}

// One line per backtest block, for the cell's tooltip.
function backtestTitle(c: Candidate): string | undefined {
  if (!c.backtest || c.backtest.length === 0) return undefined;
  return c.backtest
    .map(
      (b, i) =>
        `block ${i + 1}: Time ${num(b.timeMin).toFixed(0)}..${num(b.timeMax).toFixed(0)}, ` +
        `${num(b.rows)} rows / ${num(b.frauds)} frauds, trained on ${num(b.trainRows)} rows: ` +
        (b.error ? `failed (${b.error})` : `AUPRC ${fmtNum(b.auprc)}`),
    )
    .join('\n');
}

function CandidateCurves({ c }: { c: Candidate }) {
  const curve = c.curve ?? [];
  if (curve.length === 0) return null;
  const pts = (get: (p: (typeof curve)[number]) => unknown) =>
    curve.map((p) => ({ x: p.epoch ?? 0, y: num(get(p) as number) }));
  return (
    <div className="grid-2">
      <LineChart
        title={`${c.name}: loss per epoch`}
        xLabel="Epoch"
        yLabel="Loss"
        integerX
        width={420}
        height={240}
        series={[
          { name: 'train loss', points: pts((p) => p.trainLoss), markers: curve.length < 30 },
          { name: 'validation loss', points: pts((p) => p.validationLoss), dashed: true, markers: curve.length < 30 },
        ]}
      />
      <LineChart
        title={`${c.name}: validation AUPRC per epoch`}
        xLabel="Epoch"
        yLabel="AUPRC"
        integerX
        yBounds={[0, 1]}
        width={420}
        height={240}
        series={[{ name: 'validation AUPRC', points: pts((p) => p.validationAuprc), color: '#009E73', markers: curve.length < 30 }]}
      />
    </div>
  );
}

function RunDetails({ runId }: { runId: string }) {
  const api = useApi();
  const { withAuth } = useAuth();
  const uid = useId();
  const [run, setRun] = useState<TrainingRun | undefined>();
  const [error, setError] = useState<unknown>();
  const [live, setLive] = useState(false);

  useEffect(() => {
    let stop: (() => void) | undefined;
    let cancelled = false;
    setRun(undefined);
    setError(undefined);
    api.getRun(runId).then(
      (r) => {
        if (cancelled) return;
        setRun(r.run);
        if (!runFinished(r.run)) {
          setLive(true);
          stop = api.watchRun(runId, {
            onRun: (next) => setRun(next),
            onEnd: (last) => {
              setLive(false);
              if (last) setRun(last);
              // Fetch the final record once (the stream may end before the last update); keep
              // what we have unless the fetched record is final.
              api.getRun(runId).then(
                (f) => {
                  if (!cancelled && f.run && runFinished(f.run)) setRun(f.run);
                },
                () => undefined,
              );
            },
          });
        }
      },
      (e: unknown) => !cancelled && setError(e),
    );
    return () => {
      cancelled = true;
      stop?.();
      setLive(false);
    };
  }, [api, runId]);

  const cancelRun = async () => {
    try {
      const r = await withAuth(() => api.cancelRun(runId));
      if (r.run) setRun(r.run);
    } catch (err) {
      setError(err);
    }
  };

  if (error && !run) return <ErrorBox error={error} title={`Could not load run #${runId}`} />;
  if (!run) return <Loading what={`run #${runId}`} />;
  const p = run.progress ?? {};
  const total = p.candidatesTotal ?? 0;
  const done = p.candidatesDone ?? 0;
  const candidates = run.candidates ?? [];
  const finished = runFinished(run);

  return (
    <section className="panel run" aria-labelledby={`${uid}-h`}>
      <div className="panel-head">
        <h2 id={`${uid}-h`}>
          Run #{int64(run.id)} <StatusBadge run={run} />
        </h2>
        {!finished && (
          <button type="button" onClick={cancelRun}>
            Cancel run
          </button>
        )}
      </div>
      <ErrorBox error={error} />
      <dl className="facts">
        <Fact label="Trigger">{run.trigger || '—'}</Fact>
        <Fact label="Created">{fmtTime(run.createdAt)}</Fact>
        <Fact label="Started">{fmtTime(run.startedAt)}</Fact>
        <Fact label="Finished">{fmtTime(run.finishedAt)}</Fact>
        <Fact label="Model version">
          {nonZero(run.modelVersion) ? <a href={`#/models?v=${int64(run.modelVersion)}`}>v{int64(run.modelVersion)}</a> : '—'}
          {run.promoted && <span className="badge">promoted</span>}
        </Fact>
        <Fact label="Training data">
          {run.lineage?.description || '—'}
          {run.lineage && nonZero(run.lineage.trainRows) && ` (${fmtInt(run.lineage.trainRows)} rows)`}
        </Fact>
      </dl>
      {!finished && (
        <div className="live" aria-live="polite">
          <ProgressBar
            label="Training progress"
            value={total > 0 ? done / total : undefined}
            text={total > 0 ? `${done} of ${total} candidates` : p.phase || 'queued'}
          />
          <p className="progress-detail" data-testid="run-progress">
            Phase: <strong>{p.phase || runStatusName(run.status)}</strong>
            {p.candidate && (
              <>
                {' '}
                · candidate <strong>{p.candidate}</strong>
              </>
            )}
            {(p.epoch ?? 0) > 0 && <> · epoch {p.epoch}</>}
            {Number.isFinite(num(p.loss)) && num(p.loss) !== 0 && <> · loss {fmtNum(p.loss)}</>}
            {Number.isFinite(num(p.metric)) && num(p.metric) !== 0 && <> · metric {fmtNum(p.metric)}</>}
            {p.message && <> · {p.message}</>}
            {live && <span className="muted"> (live)</span>}
          </p>
        </div>
      )}
      {run.message && (
        <p className={`notice ${run.status === 'RUN_STATUS_FAILED' ? 'error' : run.promoted ? 'success' : 'info'}`} role="status">
          {run.message}
        </p>
      )}
      {(run.challengerComparison || run.championComparison) && (
        <p>
          Comparison-set AUPRC: challenger{' '}
          <strong>{fmtRankMetric(run.challengerComparison, run.challengerComparison?.auprc)}</strong>
          {' vs '}champion{nonZero(run.championVersionBefore) ? ` v${int64(run.championVersionBefore)}` : ''}{' '}
          <strong>{fmtRankMetric(run.championComparison, run.championComparison?.auprc)}</strong>
          {run.comparisonDifference && (
            <>
              {' · paired difference '}
              <strong data-testid="paired-difference">
                {fmtSigned(run.comparisonDifference.difference)} (95%{' '}
                {fmtSigned(run.comparisonDifference.ciLow)}..{fmtSigned(run.comparisonDifference.ciHigh)})
              </strong>
              {`, challenger better in ${(100 * num0(run.comparisonDifference.shareBetter)).toFixed(0)}% of ${
                run.comparisonDifference.resamples ?? 0
              } resamples`}
            </>
          )}
        </p>
      )}
      {run.backtestGate && (
        <p data-testid="backtest-gate">
          Gate evidence: {run.backtestGate.blocks ?? 0} backtest block(s) newer than v
          {int64(run.backtestGate.championVersion)}&apos;s training rows, mean AUPRC challenger{' '}
          <strong>{fmtNum(run.backtestGate.challengerMeanAuprc ?? 0, 4)}</strong> vs champion{' '}
          <strong>{fmtNum(run.backtestGate.championMeanAuprc ?? 0, 4)}</strong>, paired difference{' '}
          <strong>
            {fmtSigned(run.backtestGate.difference?.difference)} (95%{' '}
            {fmtSigned(run.backtestGate.difference?.ciLow)}..{fmtSigned(run.backtestGate.difference?.ciHigh)})
          </strong>
        </p>
      )}
      {run.params?.selection && (
        <p>
          Selection: <strong>{run.params.selection}</strong>
        </p>
      )}
      {candidates.length > 0 && (
        <>
          <div className="table-wrap">
            <table>
              <caption>Candidates</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Family</th>
                  <th scope="col" className="num">
                    Val. AUPRC
                  </th>
                  <th scope="col" className="num" title="Rolling-origin backtest: each time block scored by the configuration trained on the rows before it">
                    Backtest AUPRC (mean / worst)
                  </th>
                  <th scope="col" className="num">
                    ROC-AUC
                  </th>
                  <th scope="col" className="num">
                    F1
                  </th>
                  <th scope="col" className="num">
                    Train time
                  </th>
                  <th scope="col" className="num">
                    Peak memory
                  </th>
                </tr>
              </thead>
              <tbody>
                {candidates.map((c, i) => (
                  <tr key={`${c.name}-${i}`} className={c.selected ? 'is-champion' : undefined}>
                    <td className="wrap">
                      {c.name} {c.selected && <span className="badge">selected</span>}
                    </td>
                    <td>{familyName(c.family)}</td>
                    <td className="num">{fmtRankMetric(c.validationMetrics, c.validationMetrics?.auprc)}</td>
                    <td className="num" title={backtestTitle(c)}>
                      {c.backtest && c.backtest.length > 0
                        ? `${fmtNum(c.backtestMeanAuprc ?? 0)} / ${fmtNum(c.backtestWorstAuprc ?? 0)} (${c.backtest.length} blocks)`
                        : '—'}
                    </td>
                    <td className="num">{fmtRankMetric(c.validationMetrics, c.validationMetrics?.rocAuc)}</td>
                    <td className="num">{c.validationMetrics ? fmtNum(c.validationMetrics.f1) : '—'}</td>
                    <td className="num">{Number.isFinite(num(c.trainSeconds)) ? `${num(c.trainSeconds).toFixed(1)} s` : '—'}</td>
                    <td className="num">{nonZero(c.peakRssBytes) ? fmtBytes(c.peakRssBytes) : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {candidates.map((c, i) => (
            <CandidateCurves key={`${c.name}-${i}`} c={c} />
          ))}
        </>
      )}
    </section>
  );
}

/** AUPRC on the fixed comparison set per model version, in version (time) order. */
export function ReplayChart({ models }: { models: ModelVersion[] }) {
  const sorted = [...models].sort((a, b) => compareInt64(a.version, b.version));
  const withMetric = sorted.filter((m) => m.manifest?.comparisonMetrics && !m.manifest.comparisonMetrics.singleClass);
  const point = (m: ModelVersion, set: 'comparisonMetrics' | 'validationMetrics') => ({
    x: num(m.version),
    y: num(m.manifest?.[set]?.auprc),
    label: `v${int64(m.version)} (${familyName(m.family)}, ${m.manifest?.lineage?.description || 'no description'}): AUPRC ${fmtNum(m.manifest?.[set]?.auprc)}`,
  });
  const champ = withMetric.filter((m) => m.isChampion);
  return (
    <div>
      <LineChart
        title="Replay: AUPRC on the comparison set per model version"
        xLabel="Model version (in order of creation)"
        yLabel="AUPRC"
        integerX
        width={720}
        height={320}
        yBounds={[0, 1]}
        xFormat={(v) => `v${v}`}
        emptyText="No version has comparison-set metrics yet."
        series={[
          { name: 'comparison set', points: withMetric.map((m) => point(m, 'comparisonMetrics')), markers: true },
          {
            name: 'validation window',
            points: sorted.filter((m) => m.manifest?.validationMetrics).map((m) => point(m, 'validationMetrics')),
            dashed: true,
            markers: true,
          },
          ...(champ.length ? [{ name: 'champion', points: champ.map((m) => point(m, 'comparisonMetrics')), markers: true, color: '#A4408C' }] : []),
        ]}
      />
      {sorted.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption>Versions over time</caption>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Created</th>
                <th scope="col">Trained on</th>
                <th scope="col" className="num">
                  Comparison AUPRC
                </th>
              </tr>
            </thead>
            <tbody>
              {sorted.map((m) => (
                <tr key={int64(m.version)} className={m.isChampion ? 'is-champion' : undefined}>
                  <td>
                    v{int64(m.version)} {m.isChampion && <span className="badge">champion</span>}
                  </td>
                  <td>{fmtTime(m.createdAt)}</td>
                  <td className="wrap">{m.manifest?.lineage?.description || '—'}</td>
                  <td className="num">{fmtRankMetric(m.manifest?.comparisonMetrics, m.manifest?.comparisonMetrics?.auprc)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export function TrainingPage({ runId }: { runId?: string }) {
  const api = useApi();
  const uid = useId();
  const [refresh, setRefresh] = useState(0);
  const runs = useAsync(() => api.listRuns(30), [api, refresh], 5000);
  const models = useAsync(() => api.listModels(), [api, refresh], 15000);
  const list = useMemo(() => [...(runs.data?.runs ?? [])].sort((a, b) => compareInt64(b.id, a.id)), [runs.data]);

  return (
    <section aria-labelledby={`${uid}-h`}>
      <h1 id={`${uid}-h`}>Training</h1>
      <StartRunForm
        onStarted={(run) => {
          setRefresh((n) => n + 1);
          navigate(`/training/runs/${int64(run.id)}`);
        }}
      />
      {runId && <RunDetails key={runId} runId={runId} />}
      <section className="panel" aria-labelledby={`${uid}-runs`}>
        <h2 id={`${uid}-runs`}>Runs</h2>
        <ErrorBox error={runs.error} title="Could not load the runs" />
        {runs.loading && !runs.data && <Loading what="runs" />}
        {runs.data && list.length === 0 && <p className="muted">No training runs yet.</p>}
        {list.length > 0 && (
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Training runs, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Run</th>
                  <th scope="col">Status</th>
                  <th scope="col">Trigger</th>
                  <th scope="col">Created</th>
                  <th scope="col">Finished</th>
                  <th scope="col">Version</th>
                  <th scope="col">Outcome</th>
                </tr>
              </thead>
              <tbody>
                {list.map((r) => (
                  <tr key={int64(r.id)} className={runId && int64(runId) === int64(r.id) ? 'selected' : undefined}>
                    <td>
                      <a href={`#/training/runs/${int64(r.id)}`} aria-current={runId && int64(runId) === int64(r.id) ? 'true' : undefined}>
                        #{int64(r.id)}
                      </a>
                    </td>
                    <td>
                      <StatusBadge run={r} />
                    </td>
                    <td>{r.trigger || '—'}</td>
                    <td>{fmtTime(r.createdAt)}</td>
                    <td>{fmtTime(r.finishedAt)}</td>
                    <td>
                      {nonZero(r.modelVersion) ? `v${int64(r.modelVersion)}` : '—'}
                      {r.promoted && <span className="badge">promoted</span>}
                    </td>
                    <td className="wrap">{r.message || r.progress?.phase || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section className="panel" aria-labelledby={`${uid}-replay`}>
        <h2 id={`${uid}-replay`}>Model versions over time</h2>
        <ErrorBox error={models.error} title="Could not load the models" />
        {models.data && <ReplayChart models={models.data.models ?? []} />}
      </section>
    </section>
  );
}
