// Progress and result of one upload (shared by the Upload and Demo pages).

import { fmtBytes, fmtInt } from '../api/format';
import { ErrorTable, SummaryView } from './Summary';
import { ErrorBox, ProgressBar } from './Status';
import type { UploadState } from './useUploader';

export function UploadProgressView({ state, label = 'Upload progress' }: { state: UploadState; label?: string }) {
  if (state.phase === 'sending') {
    const frac = state.total > 0 ? state.loaded / state.total : 0;
    return (
      <ProgressBar
        label={label}
        value={frac}
        text={`Sending ${fmtBytes(state.loaded)} of ${fmtBytes(state.total)} (${Math.floor(frac * 100)}%)`}
      />
    );
  }
  if (state.phase === 'processing') {
    return <ProgressBar label={label} text="All bytes sent — validating and scoring…" />;
  }
  return null;
}

export function UploadResult({ state, title }: { state: UploadState; title?: string }) {
  switch (state.phase) {
    case 'done':
      return state.summary ? <SummaryView summary={state.summary} title={title} /> : null;
    case 'rejected': {
      const s = state.summary!;
      return (
        <article className="summary" aria-label={title ?? 'Rejected upload'}>
          {title && <h2>{title}</h2>}
          <div className="notice error" role="alert">
            <strong>The file was rejected; nothing was stored.</strong>{' '}
            {fmtInt(s.rowsRejected)} of {fmtInt(s.rowsTotal)} rows are invalid. Fix them or upload in lenient mode to
            skip them.
          </div>
          <ErrorTable errors={s.errors ?? []} truncated={s.errorsTruncated} />
        </article>
      );
    }
    case 'failed':
      return <ErrorBox error={state.error} title="Upload failed" />;
    case 'cancelled':
      return (
        <p className="notice info" role="status">
          Upload cancelled.
        </p>
      );
    default:
      return null;
  }
}
