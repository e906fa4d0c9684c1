// Small shared pieces: loading text, error box, progress bar.

import { ApiError } from '../api/client';

export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 0 && err.code === 'UNAVAILABLE') return 'The server could not be reached.';
    const code = err.code && !err.code.startsWith('HTTP_') ? ` (${err.code})` : '';
    return `${err.message}${code}${err.status ? ` — HTTP ${err.status}` : ''}`;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export function ErrorBox({ error, title = 'Something went wrong' }: { error: unknown; title?: string }) {
  if (!error) return null;
  return (
    <div className="notice error" role="alert">
      <strong>{title}:</strong> {describeError(error)}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status">
      Loading {what}…
    </p>
  );
}

/** A labelled progress bar; `value` undefined = indeterminate. */
export function ProgressBar({ label, value, text }: { label: string; value?: number; text: string }) {
  return (
    <div className="progress">
      <div className="progress-label">
        <span>{label}</span>
        <span aria-hidden="true">{text}</span>
      </div>
      <progress aria-label={label} aria-valuetext={text} max={1} value={value} />
    </div>
  );
}
