// Polls /api/v1/health and shows a banner when the backend is unreachable or degraded.

import { useEffect, useState } from 'react';
import { useApi } from '../api/context';
import type { HealthResponse } from '../api/types';

type State = { kind: 'unknown' } | { kind: 'up'; health: HealthResponse } | { kind: 'down'; since: number };

export function HealthBanner({ intervalMs = 10000, downIntervalMs = 4000 }: { intervalMs?: number; downIntervalMs?: number }) {
  const api = useApi();
  const [state, setState] = useState<State>({ kind: 'unknown' });

  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let down = false;
    const tick = async () => {
      try {
        const health = await api.health();
        down = false;
        if (!stop) setState({ kind: 'up', health });
      } catch {
        if (!stop) setState((s) => (s.kind === 'down' ? s : { kind: 'down', since: Date.now() }));
        down = true;
      }
      if (!stop) timer = setTimeout(tick, down ? downIntervalMs : intervalMs);
    };
    void tick();
    return () => {
      stop = true;
      if (timer) clearTimeout(timer);
    };
  }, [api, intervalMs, downIntervalMs]);

  if (state.kind === 'down') {
    return (
      <div className="banner down" role="alert">
        <strong>The backend is unreachable.</strong> Retrying every {Math.round(downIntervalMs / 1000)} s; pages show
        the last data they loaded.
      </div>
    );
  }
  if (state.kind === 'up' && state.health.status && state.health.status !== 'ok') {
    const bad = Object.entries(state.health.services ?? {}).filter(([, s]) => s !== 'SERVING');
    return (
      <div className="banner degraded" role="status">
        <strong>Service degraded.</strong>{' '}
        {bad.length > 0 ? `Not serving: ${bad.map(([n, s]) => `${n} (${s.toLowerCase()})`).join(', ')}.` : state.health.status}
      </div>
    );
  }
  return null;
}
