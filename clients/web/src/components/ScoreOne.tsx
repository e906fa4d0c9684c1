// Score one transaction with the serving model and show why: draw a synthetic row from the
// gateway's generator (or type/paste 30 numbers), score it with explain = true and show the score,
// the decision and the top reasons as signed bars.

import { useId, useState, type FormEvent } from 'react';
import { useApi } from '../api/context';
import { fmtNum, int64, num } from '../api/format';
import type { PredictResponse } from '../api/types';
import { ReasonBars } from './Reasons';
import { describeError } from './Status';

const FEATURES = 30;

/** "1, 2.5, ..." (commas and/or whitespace) -> 30 finite numbers, or an error message. */
export function parseRow(text: string): number[] | string {
  const parts = text.split(/[\s,]+/).filter((p) => p !== '');
  if (parts.length !== FEATURES) {
    return `Enter ${FEATURES} numbers (Time, V1..V28, Amount); got ${parts.length}.`;
  }
  const row = parts.map(Number);
  const bad = row.findIndex((v) => !Number.isFinite(v));
  return bad >= 0 ? `Value ${bad + 1} ("${parts[bad]}") is not a number.` : row;
}

export function ScoreOne() {
  const api = useApi();
  const uid = useId();
  const [rowText, setRowText] = useState('');
  const [seed, setSeed] = useState(() => Math.floor(Date.now() / 1000) % 100000);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<PredictResponse | null>(null);

  const draw = async () => {
    setBusy(true);
    setError(null);
    try {
      // Half frauds, so a draw is often worth explaining.
      const csv = await (await api.demoSample({ rows: 1, seed, fraudRate: 0.5, labels: false })).text();
      const line = csv.split(/\r?\n/).filter((l) => l.trim() !== '')[1] ?? '';
      setRowText(line.split(',').slice(0, FEATURES).join(', '));
      setSeed(seed + 1);
      setResult(null);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const score = async (e: FormEvent) => {
    e.preventDefault();
    const row = parseRow(rowText);
    if (typeof row === 'string') {
      setError(row);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      setResult(await api.score([row], { explain: true }));
    } catch (err) {
      setError(describeError(err));
      setResult(null);
    } finally {
      setBusy(false);
    }
  };

  const s = result?.scores;
  const explanation = result?.explanations?.[0];
  const fraud = s?.decisions?.[0] ?? false;
  return (
    <form className="panel" onSubmit={score} aria-labelledby={`${uid}-h`}>
      <h2 id={`${uid}-h`}>Score one transaction</h2>
      <label className="field">
        <span>Features (Time, V1..V28, Amount)</span>
        <textarea rows={3} value={rowText} onChange={(e) => setRowText(e.target.value)} disabled={busy} />
      </label>
      <div className="actions">
        <button type="button" onClick={draw} disabled={busy}>
          Draw a transaction
        </button>
        <button type="submit" className="primary" disabled={busy || rowText.trim() === ''}>
          Score and explain
        </button>
      </div>
      {error && (
        <p className="notice error" role="alert">
          {error}
        </p>
      )}
      {s && (
        <div aria-live="polite">
          <p role="status">
            Score <strong>{fmtNum(s.scores?.[0])}</strong> (threshold {fmtNum(s.threshold)}):{' '}
            <strong className={fraud ? 'reason-up' : 'reason-down'}>{fraud ? 'fraud' : 'normal'}</strong>, model v
            {int64(s.modelVersion)}
          </p>
          {explanation && Number.isFinite(num(explanation.margin)) && <ReasonBars explanation={explanation} />}
        </div>
      )}
    </form>
  );
}
