// Review: the queue of unreviewed alerts (GET /api/v1/review/queue), newest upload first, then
// score descending. An analyst walks it with the keyboard (j/k select, f fraud, n not fraud,
// u unsure; the note is optional) or the buttons; each disposition is POST /api/v1/review (admin
// token), and the row leaves the queue. The selected alert shows its reason bars and every
// feature beside the population's distribution (its percentile among the training rows of the
// serving model).

import { useCallback, useEffect, useMemo, useState } from 'react';
import { useApi, useAuth } from '../api/context';
import { fmtNum, int64, num } from '../api/format';
import type { FeatureReference, Int64, ReviewDispositionChoice, ReviewItem, ReviewQueueResponse } from '../api/types';
import { ReasonBars } from '../components/Reasons';
import { ErrorBox, Loading } from '../components/Status';
import { useAsync } from '../hooks';

export const FEATURE_NAMES = ['Time', ...Array.from({ length: 28 }, (_, i) => `V${i + 1}`), 'Amount'];
export const REVIEW_PAGE_SIZE = 20;

const LABELS: Record<ReviewDispositionChoice, string> = {
  fraud: 'fraud',
  not_fraud: 'not fraud',
  unsure: 'unsure',
};

/**
 * The share of the population at or below `value` (0..1) from quantile bins: the bins wholly
 * below it, plus the containing bin's share interpolated linearly (half of it in the open-ended
 * first and last bins). undefined without a usable reference.
 */
export function percentileOf(value: number, ref: FeatureReference | undefined): number | undefined {
  const edges = (ref?.edges ?? []).map(num);
  const fractions = (ref?.fractions ?? []).map(num);
  if (!Number.isFinite(value) || edges.length === 0 || fractions.length !== edges.length + 1) return undefined;
  let bin = 0;
  while (bin < edges.length && value > edges[bin]) bin++;
  let below = 0;
  for (let i = 0; i < bin; i++) below += fractions[i];
  let within = 0.5;
  if (bin > 0 && bin < edges.length) {
    const width = edges[bin] - edges[bin - 1];
    within = width > 0 ? (value - edges[bin - 1]) / width : 1;
  }
  return Math.min(1, Math.max(0, below + fractions[bin] * within));
}

/**
 * The percentile as text: inside the reference's range "63.2%"; in an open-ended outer bin only
 * a bound is known, so "≤ 10.0%" / "> 90.0%" (the bins carry no finer information there).
 */
export function percentileText(value: number, ref: FeatureReference | undefined): string {
  const p = percentileOf(value, ref);
  if (p === undefined || !ref) return 'n/a';
  const edges = (ref.edges ?? []).map(num);
  const fractions = (ref.fractions ?? []).map(num);
  if (value <= edges[0]) return `≤ ${(fractions[0] * 100).toFixed(1)}%`;
  if (value > edges[edges.length - 1]) return `> ${((1 - fractions[fractions.length - 1]) * 100).toFixed(1)}%`;
  return `${(p * 100).toFixed(1)}%`;
}

function itemKey(item: ReviewItem): string {
  return `${int64(item.uploadId)}:${int64(item.line)}`;
}

function itemName(item: ReviewItem): string {
  return item.transactionId ? `transaction ${item.transactionId}` : `upload ${int64(item.uploadId)} line ${int64(item.line)}`;
}

function labelName(label: number | undefined): string {
  if (label === 1) return 'fraud';
  if (label === 0) return 'genuine';
  return 'unlabelled';
}

/** True when the key press belongs to a form field (typing a note must not review anything). */
/** Says whose reasons these are: stored by the flagging version, or computed by the serving one. */
export function reasonsCaption(item: ReviewItem, computedBy?: Int64): string {
  if (item.explanationSource === 'stored') {
    return `Top reasons (stored by v${int64(item.explanationModelVersion ?? item.modelVersion)} when it flagged the row)`;
  }
  return `Top reasons (explained by v${int64(item.explanationModelVersion ?? computedBy)}, the serving model; none stored)`;
}

function typing(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || !el.tagName) return false;
  const tag = el.tagName.toLowerCase();
  return tag === 'input' || tag === 'textarea' || tag === 'select' || el.isContentEditable;
}

function FeatureTable({ item, population }: { item: ReviewItem; population?: FeatureReference[] }) {
  const byName = useMemo(() => new Map((population ?? []).map((f) => [f.feature ?? '', f])), [population]);
  const features = item.features ?? [];
  return (
    <div className="table-wrap">
      <table className="review-features">
        <caption>Features beside the population{population?.length ? '' : ' (no reference distribution available)'}</caption>
        <thead>
          <tr>
            <th scope="col">Feature</th>
            <th scope="col" className="num">
              Value
            </th>
            <th scope="col">Population percentile</th>
          </tr>
        </thead>
        <tbody>
          {FEATURE_NAMES.map((name, i) => {
            const value = num(features[i]);
            const ref = byName.get(name);
            const p = percentileOf(value, ref);
            const text = percentileText(value, ref);
            // Outside the training range's inner bins: worth a look.
            const extreme = p !== undefined && /[≤>]/.test(text);
            return (
              <tr key={name} data-feature={name} className={extreme ? 'extreme' : undefined}>
                <th scope="row">{name}</th>
                <td className="num">{fmtNum(value, 3)}</td>
                <td>
                  {p === undefined ? (
                    <span className="muted">n/a</span>
                  ) : (
                    <span className="percentile">
                      <span className="percentile-track" role="img" aria-label={`${name} at percentile ${text}`}>
                        <span className="percentile-mark" style={{ left: `${(p * 100).toFixed(1)}%` }} />
                      </span>
                      <span className="num">{text}</span>
                    </span>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function ReviewPage() {
  const api = useApi();
  const { withAuth } = useAuth();
  // Tokens of the pages visited: the last one is the current page ('' = the first).
  const [tokens, setTokens] = useState<string[]>(['']);
  const token = tokens[tokens.length - 1];
  const queue = useAsync<ReviewQueueResponse>(() => api.reviewQueue({ pageSize: REVIEW_PAGE_SIZE, pageToken: token }), [api, token]);
  // Items reviewed on this page (they left the queue; hidden until the page reloads).
  const [done, setDone] = useState<Set<string>>(new Set());
  const [selected, setSelected] = useState(0);
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState('');
  const [error, setError] = useState<unknown>();

  const items = useMemo(() => (queue.data?.items ?? []).filter((i) => !done.has(itemKey(i))), [queue.data, done]);
  const current = items[Math.min(selected, items.length - 1)];

  useEffect(() => {
    setDone(new Set());
    setSelected(0);
  }, [queue.data]);

  const mark = useCallback(
    async (disposition: ReviewDispositionChoice) => {
      if (!current || busy) return;
      setBusy(true);
      setError(undefined);
      try {
        const body = current.transactionId
          ? { transactionId: current.transactionId, disposition, note: note.trim() || undefined }
          : { uploadId: int64(current.uploadId), line: int64(current.line), disposition, note: note.trim() || undefined };
        const r = await withAuth(() => api.submitReview(body));
        setMessage(`Marked ${itemName(current)} as ${LABELS[disposition]}${r.labelOutcome ? ` (label ${r.labelOutcome})` : ''}.`);
        setNote('');
        const left = items.length - 1;
        setDone((d) => new Set(d).add(itemKey(current)));
        setSelected((s) => Math.max(0, Math.min(s, left - 1)));
        // The page is used up: fetch it again (reviewed rows are gone, the next ones move up).
        if (left === 0) queue.reload();
      } catch (err) {
        setError(err);
      } finally {
        setBusy(false);
      }
    },
    [api, busy, current, items.length, note, queue, withAuth],
  );

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
      switch (e.key) {
        case 'j':
          setSelected((s) => Math.min(s + 1, Math.max(0, items.length - 1)));
          break;
        case 'k':
          setSelected((s) => Math.max(0, s - 1));
          break;
        case 'f':
          void mark('fraud');
          break;
        case 'n':
          void mark('not_fraud');
          break;
        case 'u':
          void mark('unsure');
          break;
        default:
          return;
      }
      e.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [items.length, mark]);

  const next = queue.data?.nextPageToken;
  return (
    <section aria-labelledby="review-title">
      <h1 id="review-title">Review queue</h1>
      <p className="lead">
        Unreviewed alerts, newest upload first, highest score first. Keys: <kbd>j</kbd>/<kbd>k</kbd> move,{' '}
        <kbd>f</kbd> fraud, <kbd>n</kbd> not fraud, <kbd>u</kbd> unsure. Fraud and not fraud become labels (source
        “review”) that the realised metrics and the next training run use; unsure only takes the alert out of the queue.
      </p>
      {queue.error ? <ErrorBox error={queue.error} title="Could not load the review queue" /> : null}
      {queue.loading && !queue.data ? <Loading what="the review queue" /> : null}
      {queue.data?.explanationError ? (
        <p className="notice warn" role="status">
          Reasons are not available: {queue.data.explanationError}
        </p>
      ) : null}
      <ErrorBox error={error} title="The review was not recorded" />
      <p role="status" className="review-message">
        {message}
      </p>
      {queue.data && items.length === 0 && !queue.loading ? (
        <p className="muted">No alert waits for review{tokens.length > 1 ? ' on this page' : ''}.</p>
      ) : null}
      <div className="grid-2">
        <div className="panel">
          <div className="table-wrap">
            <table className="review-queue">
              <caption>
                Alerts {tokens.length > 1 ? `(page ${tokens.length})` : ''}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Transaction</th>
                  <th scope="col" className="num">
                    Score
                  </th>
                  <th scope="col" className="num">
                    Model
                  </th>
                  <th scope="col" className="num">
                    Amount
                  </th>
                  <th scope="col">Label</th>
                </tr>
              </thead>
              <tbody>
                {items.map((item, i) => (
                  <tr
                    key={itemKey(item)}
                    data-key={itemKey(item)}
                    className={item === current ? 'selected' : undefined}
                    aria-selected={item === current}
                    onClick={() => setSelected(i)}
                  >
                    <td>{itemName(item)}</td>
                    <td className="num">{fmtNum(item.score, 3)}</td>
                    <td className="num">v{int64(item.modelVersion)}</td>
                    <td className="num">{fmtNum(item.amount, 2)}</td>
                    <td>{labelName(item.currentLabel)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="actions">
            <button type="button" disabled={tokens.length <= 1} onClick={() => setTokens((t) => t.slice(0, -1))}>
              Previous page
            </button>
            <button type="button" disabled={!next} onClick={() => next && setTokens((t) => [...t, next])}>
              Next page
            </button>
          </div>
        </div>
        {current ? (
          <section className="panel" aria-label="Selected alert">
            <h2>{itemName(current)}</h2>
            <p>
              Score {fmtNum(current.score, 3)} by v{int64(current.modelVersion)} · Time {fmtNum(current.time, 0)} s · Amount{' '}
              {fmtNum(current.amount, 2)} · now {labelName(current.currentLabel)}
            </p>
            <label className="field">
              <span>Note (optional)</span>
              <input type="text" value={note} maxLength={1000} onChange={(e) => setNote(e.target.value)} />
            </label>
            <div className="actions">
              <button type="button" className="primary" disabled={busy} onClick={() => void mark('fraud')}>
                Fraud (f)
              </button>
              <button type="button" disabled={busy} onClick={() => void mark('not_fraud')}>
                Not fraud (n)
              </button>
              <button type="button" disabled={busy} onClick={() => void mark('unsure')}>
                Unsure (u)
              </button>
            </div>
            {current.explanation ? (
              <div className="table-wrap">
                <ReasonBars
                  explanation={current.explanation}
                  caption={reasonsCaption(current, queue.data?.explanationModelVersion)}
                />
              </div>
            ) : null}
            <FeatureTable item={current} population={queue.data?.population?.features} />
            {queue.data?.population?.modelVersion !== undefined ? (
              <p className="hint">Population: the training rows of v{int64(queue.data.population.modelVersion)}.</p>
            ) : null}
          </section>
        ) : null}
      </div>
    </section>
  );
}

