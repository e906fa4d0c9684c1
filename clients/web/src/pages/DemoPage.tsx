// Demo mode: fetch synthetic labelled files from the gateway's generator and upload them one
// after another, showing each result; and score a single transaction with its reasons.

import { useId, useRef, useState, type FormEvent } from 'react';
import { useApi } from '../api/context';
import { fmtInt, fmtNum, fmtRankMetric, int64, nonZero } from '../api/format';
import { ScoreOne } from '../components/ScoreOne';
import { describeError, ProgressBar } from '../components/Status';
import { UploadProgressView, UploadResult } from '../components/UploadOutcome';
import { useUploader, type UploadState } from '../components/useUploader';

interface DemoItem {
  index: number;
  seed: number;
  fileName: string;
  result?: UploadState;
}

export function DemoPage() {
  const api = useApi();
  const uid = useId();
  const [filesText, setFilesText] = useState('3');
  const [rowsText, setRowsText] = useState('20000');
  const [seedText, setSeedText] = useState(() => String(Math.floor(Date.now() / 1000) % 100000));
  const files = Math.trunc(Number(filesText));
  const rows = Math.trunc(Number(rowsText));
  const seed = Math.trunc(Number(seedText));
  const invalid =
    !(files >= 1 && files <= 10)
      ? 'Files must be between 1 and 10.'
      : !(rows >= 1 && rows <= 500000)
        ? 'Rows per file must be between 1 and 500,000.'
        : !(seed >= 0) || seedText.trim() === ''
          ? 'The first seed must be a number ≥ 0.'
          : null;
  const [items, setItems] = useState<DemoItem[]>([]);
  const [status, setStatus] = useState<string>('');
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const stopRef = useRef(false);
  const { state, start, cancel } = useUploader();

  const run = async (e: FormEvent) => {
    e.preventDefault();
    if (invalid) {
      setError(invalid);
      return;
    }
    stopRef.current = false;
    setRunning(true);
    setError(null);
    setItems([]);
    try {
      for (let i = 0; i < files && !stopRef.current; i++) {
        const s = seed + i;
        const fileName = `demo-seed${s}-${rows}rows.csv`;
        setStatus(`File ${i + 1} of ${files}: generating ${fmtInt(rows)} rows (seed ${s})…`);
        setItems((list) => [...list, { index: i, seed: s, fileName }]);
        const blob = await api.demoSample({ rows, seed: s, labels: true });
        if (stopRef.current) break;
        setStatus(`File ${i + 1} of ${files}: uploading ${fileName}…`);
        const result = await start(blob, 'strict', fileName);
        setItems((list) => list.map((it) => (it.index === i ? { ...it, result } : it)));
        if (result.phase === 'cancelled') break;
      }
      setStatus(stopRef.current ? 'Demo stopped.' : 'Demo finished.');
      setSeedText(String(seed + files));
    } catch (err) {
      setError(describeError(err));
      setStatus('Demo failed.');
    } finally {
      setRunning(false);
    }
  };

  const stop = () => {
    stopRef.current = true;
    cancel();
  };

  const done = items.filter((it) => it.result).length;

  return (
    <section aria-labelledby={`${uid}-h`}>
      <h1 id={`${uid}-h`}>Demo</h1>
      <p className="lead">
        Generates synthetic labelled transaction files on the server (same columns and similar statistics as the
        public dataset) and uploads them one after another, so you can watch validation, scoring and metrics.
      </p>
      <form className="panel" onSubmit={run} aria-label="Demo settings">
        <div className="form-row">
          <label className="field">
            <span>Files</span>
            <input
              type="number"
              min={1}
              max={10}
              value={filesText}
              disabled={running}
              aria-invalid={!(files >= 1 && files <= 10)}
              onChange={(e) => setFilesText(e.target.value)}
            />
          </label>
          <label className="field">
            <span>Rows per file</span>
            <input
              type="number"
              min={1}
              max={500000}
              value={rowsText}
              disabled={running}
              aria-invalid={!(rows >= 1 && rows <= 500000)}
              onChange={(e) => setRowsText(e.target.value)}
            />
          </label>
          <label className="field">
            <span>First seed</span>
            <input
              type="number"
              min={0}
              value={seedText}
              disabled={running}
              onChange={(e) => setSeedText(e.target.value)}
            />
          </label>
        </div>
        <div className="actions">
          <button type="submit" className="primary" disabled={running}>
            Run demo
          </button>
          {running && (
            <button type="button" onClick={stop}>
              Stop
            </button>
          )}
        </div>
        <div aria-live="polite">
          {(running || status) && <p role="status">{status}</p>}
          {running && (
            <ProgressBar label="Demo progress" value={done / files} text={`${done} of ${files} files done`} />
          )}
          {running && <UploadProgressView state={state} label="Current file" />}
        </div>
        {error && (
          <p className="notice error" role="alert">
            {error}
          </p>
        )}
      </form>

      {items.some((it) => it.result) && (
        <div className="table-wrap">
          <table>
            <caption>Demo uploads</caption>
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">Upload</th>
                <th scope="col" className="num">
                  Rows
                </th>
                <th scope="col" className="num">
                  Predicted frauds
                </th>
                <th scope="col" className="num">
                  AUPRC
                </th>
                <th scope="col" className="num">
                  Recall
                </th>
              </tr>
            </thead>
            <tbody>
              {items
                .filter((it) => it.result)
                .map((it) => {
                  const s = it.result?.summary;
                  const m = s?.metrics;
                  return (
                    <tr key={it.index}>
                      <td className="wrap">{it.fileName}</td>
                      <td>
                        {s && nonZero(s.uploadId) ? (
                          <a href={`#/uploads/${int64(s.uploadId)}`}>#{int64(s.uploadId)}</a>
                        ) : s && nonZero(s.duplicateOf) ? (
                          `duplicate of #${int64(s.duplicateOf)}`
                        ) : (
                          it.result?.phase
                        )}
                      </td>
                      <td className="num">{s ? fmtInt(s.rowsAccepted) : '—'}</td>
                      <td className="num">{s ? fmtInt(s.predictedFrauds) : '—'}</td>
                      <td className="num">{fmtRankMetric(m, m?.auprc)}</td>
                      <td className="num">{m ? fmtNum(m.recall) : '—'}</td>
                    </tr>
                  );
                })}
            </tbody>
          </table>
        </div>
      )}

      <ScoreOne />

      {items.map((it) =>
        it.result ? (
          <details key={it.index} className="panel demo-item" open={it.index === items.length - 1}>
            <summary>
              File {it.index + 1}: {it.fileName}
            </summary>
            <UploadResult state={it.result} />
          </details>
        ) : null,
      )}
    </section>
  );
}
