// A stored upload: its summary re-rendered from summaryJson, and its predictions with paging.

import { Fragment, useId, useState } from 'react';
import { parseSummaryJson } from '../api/client';
import { useApi } from '../api/context';
import { fmtBytes, fmtInt, fmtNum, fmtTime, int64, modeName, nonZero, num, num0 } from '../api/format';
import type { Prediction, PredictResponse, Upload } from '../api/types';
import { ReasonBars } from '../components/Reasons';
import { SummaryView } from '../components/Summary';
import { ErrorBox, Loading } from '../components/Status';
import { useAsync } from '../hooks';
import { Fact } from '../components/Fact';

const PAGE_SIZES = [25, 50, 100, 250];

/** The stored record; with a summary, only what the summary does not show. */
function UploadFacts({ upload, brief }: { upload: Upload; brief: boolean }) {
  return (
    <dl className="facts">
      {!brief && (
        <>
          <Fact label="File">{upload.fileName || '—'}</Fact>
          <Fact label="Mode">{modeName(upload.mode)}</Fact>
          <Fact label="Rows">{fmtInt(upload.rows)}</Fact>
          <Fact label="Rejected">{fmtInt(upload.rowsRejected)}</Fact>
          <Fact label="Frauds">{nonZero(upload.labelledRows) ? fmtInt(upload.frauds) : 'unlabelled'}</Fact>
          <Fact label="Size">{fmtBytes(upload.bytes)}</Fact>
        </>
      )}
      <Fact label="Received">{fmtTime(upload.receivedAt)}</Fact>
      <div className="wide">
        <dt>sha256</dt>
        <dd className="mono wrap">{upload.sha256 || '—'}</dd>
      </div>
    </dl>
  );
}

/** The reasons of one stored row: those that came with the page (an alert's stored reasons, or
 * the gateway's computed ones), else asked of the serving model (POST /score with explain). */
function RowReasons({ prediction, columns }: { prediction: Prediction; columns: number }) {
  if (prediction.explanation && Number.isFinite(num(prediction.explanation.margin))) {
    const by = int64(prediction.explanationModelVersion ?? prediction.modelVersion);
    const how =
      prediction.explanationSource === 'stored'
        ? `stored by v${by} when it scored the row`
        : `by the serving model v${by}`;
    return (
      <tr className="row-reasons">
        <td colSpan={columns}>
          <ReasonBars
            explanation={prediction.explanation}
            caption={`Why line ${fmtInt(prediction.line)} scored as it did: top reasons ${how}`}
          />
        </td>
      </tr>
    );
  }
  return <ComputedRowReasons prediction={prediction} columns={columns} />;
}

/** The reasons of a row that came without any, asked of the serving model. */
function ComputedRowReasons({ prediction, columns }: { prediction: Prediction; columns: number }) {
  const api = useApi();
  const features = (prediction.features ?? []).map((v) => num0(v));
  const res = useAsync<PredictResponse>(() => api.score([features], { explain: true }), [api, features.join(',')]);
  const explanation = res.data?.explanations?.[0];
  const servedBy = res.data?.scores?.modelVersion;
  const scoredBy = int64(prediction.modelVersion);
  return (
    <tr className="row-reasons">
      <td colSpan={columns}>
        <ErrorBox error={res.error} title="Could not explain this row" />
        {res.loading && !res.data && <Loading what="the reasons" />}
        {explanation && (
          <>
            <ReasonBars
              explanation={explanation}
              caption={`Why line ${fmtInt(prediction.line)} scored as it did: top reasons by the serving model v${int64(servedBy)}`}
            />
            {int64(servedBy) !== scoredBy && (
              <p className="muted">
                Stored score by v{scoredBy}; the serving model v{int64(servedBy)} scores it {fmtNum(res.data?.scores?.scores?.[0])}.
              </p>
            )}
          </>
        )}
      </td>
    </tr>
  );
}

export function PredictionsTable({ uploadId }: { uploadId: string }) {
  const api = useApi();
  const uid = useId();
  const [order, setOrder] = useState<'line' | 'score'>('line');
  const [pageSize, setPageSize] = useState(50);
  const [offset, setOffset] = useState(0);
  const page = useAsync(
    () => api.listPredictions(uploadId, { order, offset, pageSize }),
    [api, uploadId, order, offset, pageSize],
  );
  const preds = page.data?.predictions ?? [];
  const total = num0(page.data?.total);
  const labelled = preds.some((p) => (p.label ?? -1) >= 0);
  // The line whose reasons are open (one at a time).
  const [explained, setExplained] = useState<string | null>(null);
  const columns = labelled ? 8 : 7;

  return (
    <section className="panel" aria-labelledby={`${uid}-h`}>
      <h2 id={`${uid}-h`}>Predictions</h2>
      <div className="toolbar">
        <label className="field inline">
          <span>Order</span>
          <select
            value={order}
            onChange={(e) => {
              setOrder(e.target.value as 'line' | 'score');
              setOffset(0);
            }}
          >
            <option value="line">by line</option>
            <option value="score">by score, highest first</option>
          </select>
        </label>
        <label className="field inline">
          <span>Rows per page</span>
          <select
            value={pageSize}
            onChange={(e) => {
              setPageSize(Number(e.target.value));
              setOffset(0);
            }}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorBox error={page.error} title="Could not load the predictions" />
      {page.loading && !page.data && <Loading what="predictions" />}
      {page.data && preds.length === 0 && <p className="muted">No predictions stored for this upload.</p>}
      {preds.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption>
              Rows {fmtInt(offset + 1)}–{fmtInt(offset + preds.length)} of {fmtInt(total)}
            </caption>
            <thead>
              <tr>
                <th scope="col" className="num">
                  Line
                </th>
                <th scope="col" className="num">
                  Score
                </th>
                <th scope="col">Decision</th>
                {labelled && <th scope="col">Label</th>}
                <th scope="col" className="num">
                  Time (s)
                </th>
                <th scope="col" className="num">
                  Amount
                </th>
                <th scope="col">Model</th>
                <th scope="col">Reasons</th>
              </tr>
            </thead>
            <tbody>
              {preds.map((p) => {
                const line = int64(p.line);
                const open = explained === line;
                return (
                  <Fragment key={line}>
                    <tr className={p.decision ? 'flagged' : undefined}>
                      <td className="num">{fmtInt(p.line)}</td>
                      <td className="num">{fmtNum(p.score)}</td>
                      <td>{p.decision ? <strong>fraud</strong> : 'normal'}</td>
                      {labelled && <td>{p.label === 1 ? 'fraud' : p.label === 0 ? 'normal' : '—'}</td>}
                      <td className="num">{p.features?.length ? fmtInt(num(p.features[0])) : '—'}</td>
                      <td className="num">{p.features && p.features.length >= 30 ? fmtNum(p.features[29], 2) : '—'}</td>
                      <td>v{int64(p.modelVersion)}</td>
                      <td>
                        <button
                          type="button"
                          className="link-button"
                          aria-expanded={open}
                          aria-label={`${open ? 'Hide' : 'Why?'} line ${fmtInt(p.line)}`}
                          disabled={(p.features?.length ?? 0) < 30}
                          onClick={() => setExplained(open ? null : line)}
                        >
                          {open ? 'Hide' : 'Why?'}
                        </button>
                      </td>
                    </tr>
                    {open && <RowReasons prediction={p} columns={columns} />}
                  </Fragment>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <div className="pager">
        <button type="button" disabled={offset === 0 || page.loading} onClick={() => setOffset(Math.max(0, offset - pageSize))}>
          Previous page
        </button>
        <button
          type="button"
          disabled={offset + pageSize >= total || page.loading}
          onClick={() => setOffset(offset + pageSize)}
        >
          Next page
        </button>
      </div>
    </section>
  );
}

export function UploadDetailPage({ id }: { id: string }) {
  const api = useApi();
  const uid = useId();
  const res = useAsync(() => api.getUpload(id), [api, id]);
  const upload = res.data?.upload;
  const summary = parseSummaryJson(upload?.summaryJson);

  return (
    <section aria-labelledby={`${uid}-h`}>
      <p>
        <a href="#/upload">← All uploads</a>
      </p>
      <h1 id={`${uid}-h`}>Upload #{int64(id)}</h1>
      <ErrorBox error={res.error} title="Could not load the upload" />
      {res.loading && !res.data && <Loading what="the upload" />}
      {upload && (
        <>
          <UploadFacts upload={upload} brief={!!summary} />
          {summary ? (
            <SummaryView summary={summary} />
          ) : (
            <p className="muted">No stored summary for this upload.</p>
          )}
          <PredictionsTable uploadId={int64(upload.id ?? id)} />
        </>
      )}
    </section>
  );
}
