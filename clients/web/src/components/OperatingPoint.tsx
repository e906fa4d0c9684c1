// The operating point of one model version (issue 17 item 4): a slider over the what-if curve
// (expected alerts/day, precision and recall on the latest labelled data, live as it moves, no
// request per step), a budget input (alerts/day) that finds the loosest threshold meeting it, the
// point the version serves at now, an admin "Apply" behind the confirmation dialog, and the audited
// history of changes.

import { useId, useMemo, useState } from 'react';
import { useApi, useAuth } from '../api/context';
import { fmtInt, fmtNum, fmtPct, fmtTime, int64, num0 } from '../api/format';
import type { Int64, OperatingPoint, OperatingPointKind, SetOperatingPointResponse, WhatIfPoint } from '../api/types';
import { useAsync } from '../hooks';
import { ConfirmDialog } from './ConfirmDialog';
import { describeError, ErrorBox, Loading } from './Status';

const KIND_LABEL: Record<string, string> = {
  OPERATING_POINT_KIND_THRESHOLD: 'threshold',
  OPERATING_POINT_KIND_ALERTS_PER_DAY: 'alerts/day',
  OPERATING_POINT_KIND_FRACTION: 'fraction',
};

/** Index of the curve point whose threshold is nearest `t` (the curve ascends in threshold). */
export function nearestIndex(curve: WhatIfPoint[], t: number): number {
  let best = 0;
  for (let i = 1; i < curve.length; i++) {
    if (Math.abs(num0(curve[i].threshold) - t) < Math.abs(num0(curve[best].threshold) - t)) best = i;
  }
  return best;
}

/**
 * Index of the loosest curve point meeting a budget of `perDay` alerts per day (the lowest
 * threshold whose expected alerts/day do not exceed it); the strictest point when none does.
 */
export function budgetIndex(curve: WhatIfPoint[], perDay: number): number {
  for (let i = 0; i < curve.length; i++) {
    if (num0(curve[i].alertsPerDay) <= perDay) return i;
  }
  return Math.max(0, curve.length - 1);
}

function Figures({ p, label }: { p: WhatIfPoint | undefined; label: string }) {
  return (
    <dl className="facts whatif-figures" aria-label={label}>
      <div>
        <dt>Threshold</dt>
        <dd data-testid="whatif-threshold">{fmtNum(p?.threshold ?? 0, 4)}</dd>
      </div>
      <div>
        <dt>Expected alerts/day</dt>
        <dd data-testid="whatif-alerts">{fmtNum(p?.alertsPerDay ?? 0, 1)}</dd>
      </div>
      <div>
        <dt>Share flagged</dt>
        <dd>{fmtPct(p?.alertFraction ?? 0, 3)}</dd>
      </div>
      <div>
        <dt>Precision</dt>
        <dd data-testid="whatif-precision">{num0(p?.alerts) > 0 ? fmtNum(p?.precision ?? 0, 3) : 'n/a'}</dd>
      </div>
      <div>
        <dt>Recall</dt>
        <dd data-testid="whatif-recall">{fmtNum(p?.recall ?? 0, 3)}</dd>
      </div>
    </dl>
  );
}

function describe(p: OperatingPoint): string {
  const kind = KIND_LABEL[p.kind ?? ''] ?? '—';
  const v = num0(p.requestedValue);
  if (p.kind === 'OPERATING_POINT_KIND_FRACTION') return `${kind} ${fmtPct(v, 3)}`;
  if (p.kind === 'OPERATING_POINT_KIND_ALERTS_PER_DAY') return `${fmtNum(v, 1)} ${kind}`;
  return `${kind} ${fmtNum(v, 4)}`;
}

export function OperatingPointPanel({ version }: { version: Int64 }) {
  const api = useApi();
  const { withAuth } = useAuth();
  const uid = useId();
  const v = int64(version);
  const data = useAsync(() => Promise.all([api.whatIf(v), api.operatingPoint(v)]), [api, v]);
  const [whatIf, op] = data.data ?? [];
  const curve = useMemo(() => whatIf?.curve ?? [], [whatIf]);
  // null = at the threshold the version serves with.
  const [picked, setIndex] = useState<number | null>(null);
  const [budget, setBudget] = useState('');
  const [mode, setMode] = useState<'threshold' | 'budget'>('threshold');
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<SetOperatingPointResponse | null>(null);

  const index = Math.min(picked ?? nearestIndex(curve, num0(whatIf?.current?.threshold)), Math.max(0, curve.length - 1));
  const point = curve[index];
  const history = op?.history ?? [];
  const budgetValue = Number(budget);
  const budgetValid = budget !== '' && Number.isFinite(budgetValue) && budgetValue > 0;

  const apply = async (reason: string) => {
    setBusy(true);
    setError(null);
    try {
      const change: { kind: OperatingPointKind; value: number; reason: string } =
        mode === 'budget' && budgetValid
          ? { kind: 'OPERATING_POINT_KIND_ALERTS_PER_DAY', value: budgetValue, reason }
          : { kind: 'OPERATING_POINT_KIND_THRESHOLD', value: num0(point?.threshold), reason };
      const res = await withAuth(() => api.setOperatingPoint(v, change));
      setOutcome(res);
      setConfirming(false);
      data.reload();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby={`${uid}-h`}>
      <h2 id={`${uid}-h`}>Operating point of v{v}</h2>
      <ErrorBox error={data.error} title="Could not load the what-if" />
      {data.loading && !data.data && <Loading what="the what-if curve" />}
      {outcome && (
        <div className={`notice ${outcome.reloaded === false ? 'warn' : 'success'}`} role="status">
          <strong>Operating point set: threshold {fmtNum(outcome.point?.threshold ?? 0, 4)}</strong>. {outcome.message}
        </div>
      )}
      {whatIf && (
        <>
          <p className="hint">
            On the latest labelled data: {fmtInt(whatIf.rows)} rows, {fmtInt(whatIf.frauds)} frauds over{' '}
            {fmtNum(whatIf.days ?? 0, 0)} day(s) (days {int64(whatIf.firstDay ?? 0)}–{int64(whatIf.lastDay ?? 0)} of Time)
            {whatIf.truncated ? ', older days left out' : ''}.
          </p>
          <p data-testid="whatif-current">
            Serving at threshold <strong>{fmtNum(whatIf.current?.threshold ?? 0, 4)}</strong> (
            {whatIf.currentSource === 'operating_point' ? 'operating point' : "the manifest's F1-optimal"}):{' '}
            {fmtNum(whatIf.current?.alertsPerDay ?? 0, 1)} alerts/day, precision {fmtNum(whatIf.current?.precision ?? 0, 3)},
            recall {fmtNum(whatIf.current?.recall ?? 0, 3)}.
          </p>
          {curve.length > 0 ? (
            <>
              <label className="field">
                <span>Candidate threshold</span>
                <input
                  type="range"
                  min={0}
                  max={curve.length - 1}
                  step={1}
                  value={index}
                  aria-valuetext={`threshold ${fmtNum(point?.threshold ?? 0, 4)}`}
                  onChange={(e) => {
                    setMode('threshold');
                    setIndex(Number(e.target.value));
                  }}
                />
              </label>
              <form
                className="inline-form"
                onSubmit={(e) => {
                  e.preventDefault();
                  if (!budgetValid) return;
                  setMode('budget');
                  setIndex(budgetIndex(curve, budgetValue));
                }}
              >
                <label className="field">
                  <span>Budget (alerts per day)</span>
                  <input type="number" min={0} step="any" value={budget} onChange={(e) => setBudget(e.target.value)} />
                </label>
                <button type="submit" disabled={!budgetValid}>
                  Find threshold
                </button>
              </form>
              <Figures p={point} label="Expected at the candidate" />
              <button
                type="button"
                className="primary"
                onClick={() => {
                  setError(null);
                  setConfirming(true);
                }}
              >
                Apply operating point
              </button>
            </>
          ) : (
            <p className="muted">No labelled rows to evaluate on yet.</p>
          )}
        </>
      )}
      {history.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption>Operating-point history of v{v}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Asked</th>
                <th scope="col" className="num">Threshold</th>
                <th scope="col" className="num">Previous</th>
                <th scope="col" className="num">Expected alerts/day</th>
                <th scope="col" className="num">Precision</th>
                <th scope="col" className="num">Recall</th>
                <th scope="col">Reason</th>
                <th scope="col">By</th>
              </tr>
            </thead>
            <tbody>
              {history.map((h) => (
                <tr key={int64(h.id ?? 0)}>
                  <td>{fmtTime(h.changedAt)}</td>
                  <td>{describe(h)}</td>
                  <td className="num">{fmtNum(h.threshold ?? 0, 4)}</td>
                  <td className="num">{fmtNum(h.previousThreshold ?? 0, 4)}</td>
                  <td className="num">{fmtNum(h.expectedAlertsPerDay ?? 0, 1)}</td>
                  <td className="num">{fmtNum(h.expectedPrecision ?? 0, 3)}</td>
                  <td className="num">{fmtNum(h.expectedRecall ?? 0, 3)}</td>
                  <td className="wrap">{h.reason || '—'}</td>
                  <td>{h.actor || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {confirming && (
        <ConfirmDialog
          title={`Change the operating point of v${v}?`}
          confirmLabel="Apply"
          defaultReason="operating point set from the web UI"
          reasonLabel="Reason (recorded in the operating-point history)"
          busy={busy}
          error={error}
          onConfirm={apply}
          onCancel={() => {
            if (!busy) setConfirming(false);
          }}
        >
          <p>
            {mode === 'budget' && budgetValid
              ? `At most ${fmtNum(budgetValue, 1)} alerts per day: the server resolves the threshold on the latest labelled data`
              : `Threshold ${fmtNum(point?.threshold ?? 0, 4)}`}
            ; expected {fmtNum(point?.alertsPerDay ?? 0, 1)} alerts/day, precision {fmtNum(point?.precision ?? 0, 3)}, recall{' '}
            {fmtNum(point?.recall ?? 0, 3)}. When v{v} is champion, inference reloads it at once.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
