// Upload state machine shared by the Upload and Demo pages: idle -> sending -> processing ->
// done | rejected (validation failed, with the summary) | failed | cancelled.

import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, type UploadModeChoice } from '../api/client';
import { useApi } from '../api/context';
import type { UploadSummary } from '../api/types';

export type UploadPhase = 'idle' | 'sending' | 'processing' | 'done' | 'rejected' | 'failed' | 'cancelled';

export interface UploadState {
  phase: UploadPhase;
  loaded: number;
  total: number;
  summary?: UploadSummary;
  error?: unknown;
}

export function useUploader() {
  const api = useApi();
  const [state, setState] = useState<UploadState>({ phase: 'idle', loaded: 0, total: 0 });
  const abortRef = useRef<(() => void) | null>(null);

  useEffect(() => () => abortRef.current?.(), []);

  const start = useCallback(
    async (file: Blob, mode: UploadModeChoice, fileName?: string): Promise<UploadState> => {
      setState({ phase: 'sending', loaded: 0, total: file.size });
      const handle = api.upload(file, {
        mode,
        fileName,
        onProgress: (p) => setState((s) => ({ ...s, phase: p.phase, loaded: p.loaded, total: p.total })),
      });
      abortRef.current = handle.abort;
      let final: UploadState;
      try {
        const summary = await handle.promise;
        final = { phase: 'done', loaded: file.size, total: file.size, summary };
      } catch (err) {
        const base = { loaded: 0, total: file.size, error: err };
        if (err instanceof ApiError && err.code === 'CANCELLED') final = { ...base, phase: 'cancelled' };
        else if (err instanceof ApiError && err.summary) final = { ...base, phase: 'rejected', summary: err.summary };
        else final = { ...base, phase: 'failed' };
      } finally {
        abortRef.current = null;
      }
      setState(final);
      return final;
    },
    [api],
  );

  const cancel = useCallback(() => abortRef.current?.(), []);
  const reset = useCallback(() => setState({ phase: 'idle', loaded: 0, total: 0 }), []);
  const busy = state.phase === 'sending' || state.phase === 'processing';
  return { state, start, cancel, reset, busy };
}
