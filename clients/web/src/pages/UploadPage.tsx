// Upload a CSV (drag and drop or file picker), watch real progress, see the result.

import { useId, useRef, useState, type FormEvent } from 'react';
import type { UploadModeChoice } from '../api/client';
import { fmtBytes } from '../api/format';
import { UploadHistory } from '../components/UploadHistory';
import { UploadProgressView, UploadResult } from '../components/UploadOutcome';
import { useUploader } from '../components/useUploader';

export function UploadPage() {
  const uid = useId();
  const [file, setFile] = useState<File | null>(null);
  const [mode, setMode] = useState<UploadModeChoice>('strict');
  const [dragging, setDragging] = useState(false);
  const [refreshKey, setRefreshKey] = useState(0);
  const inputRef = useRef<HTMLInputElement>(null);
  const { state, start, cancel, busy } = useUploader();

  const pick = (f: File | undefined | null) => {
    if (f) setFile(f);
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!file || busy) return;
    const result = await start(file, mode, file.name);
    if (result.phase === 'done') setRefreshKey((k) => k + 1);
  };

  return (
    <section aria-labelledby={`${uid}-h`}>
      <h1 id={`${uid}-h`}>Upload transactions</h1>
      <p className="lead">
        A CSV in the dataset's format: <code>Time,V1,…,V28,Amount</code> and optionally <code>Class</code>. Every row is
        validated, stored and scored by the champion model; labelled files also get quality metrics.
      </p>
      <form className="panel upload-form" onSubmit={submit} aria-label="Upload a CSV file">
        <div
          className={`dropzone${dragging ? ' dragging' : ''}`}
          onDragOver={(e) => {
            e.preventDefault();
            e.dataTransfer.dropEffect = 'copy';
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            pick(e.dataTransfer.files?.[0]);
          }}
        >
          <p>Drop a CSV file here, or</p>
          <label className="file-label">
            <span>Choose a CSV file</span>
            <input
              ref={inputRef}
              type="file"
              name="file"
              accept=".csv,text/csv"
              disabled={busy}
              onChange={(e) => pick(e.target.files?.[0])}
            />
          </label>
          <p className="file-name" aria-live="polite">
            {file ? (
              <>
                Selected: <strong>{file.name}</strong> ({fmtBytes(file.size)})
              </>
            ) : (
              'No file selected.'
            )}
          </p>
        </div>
        <fieldset className="radio-group" disabled={busy}>
          <legend>When a row is invalid</legend>
          <label>
            <input
              type="radio"
              name="mode"
              value="strict"
              checked={mode === 'strict'}
              onChange={() => setMode('strict')}
            />{' '}
            Strict: reject the whole file
          </label>
          <label>
            <input
              type="radio"
              name="mode"
              value="lenient"
              checked={mode === 'lenient'}
              onChange={() => setMode('lenient')}
            />{' '}
            Lenient: skip invalid rows and report them
          </label>
        </fieldset>
        <div className="actions">
          <button type="submit" className="primary" disabled={!file || busy}>
            Upload
          </button>
          {busy && (
            <button type="button" onClick={cancel}>
              Cancel upload
            </button>
          )}
        </div>
        <div aria-live="polite">
          <UploadProgressView state={state} />
        </div>
      </form>
      <div className="result">
        <UploadResult state={state} title={state.phase === 'done' ? 'Result' : undefined} />
      </div>
      <UploadHistory refreshKey={refreshKey} />
    </section>
  );
}
