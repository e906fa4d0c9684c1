// Confirms a consequential action (promotion, rollback, an operating-point change) and asks for the reason recorded with it.

import { useState, type ReactNode } from 'react';
import { Dialog } from './Dialog';

export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  defaultReason,
  busy,
  error,
  onConfirm,
  onCancel,
  reasonLabel = 'Reason (recorded in the champion history)',
}: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  defaultReason: string;
  busy?: boolean;
  error?: string | null;
  onConfirm: (reason: string) => void;
  onCancel: () => void;
  reasonLabel?: string;
}) {
  const [reason, setReason] = useState(defaultReason);
  return (
    <Dialog title={title} onClose={onCancel} initialFocus="button.primary">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          onConfirm(reason.trim() || defaultReason);
        }}
      >
        {children}
        <label className="field">
          <span>{reasonLabel}</span>
          <input type="text" name="reason" value={reason} onChange={(e) => setReason(e.target.value)} />
        </label>
        {error && (
          <p className="error-text" role="alert">
            {error}
          </p>
        )}
        <div className="actions">
          <button type="button" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
