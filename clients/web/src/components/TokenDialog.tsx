// Asks for the admin bearer token (kept in sessionStorage for this tab).

import { useState } from 'react';
import { Dialog } from './Dialog';

export function TokenDialog({
  message,
  onSubmit,
  onCancel,
}: {
  message: string;
  onSubmit: (token: string) => void;
  onCancel: () => void;
}) {
  const [token, setToken] = useState('');
  return (
    <Dialog title="Admin token" onClose={onCancel} initialFocus="input">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (token.trim()) onSubmit(token.trim());
        }}
      >
        <p>{message}</p>
        <label className="field">
          <span>Token</span>
          <input
            type="password"
            name="token"
            autoComplete="off"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            required
          />
        </label>
        <p className="hint">Remembered for this browser tab only.</p>
        <div className="actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={!token.trim()}>
            Use token
          </button>
        </div>
      </form>
    </Dialog>
  );
}
