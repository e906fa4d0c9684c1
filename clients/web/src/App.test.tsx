import { act, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { App } from './App';
import { makeClient, renderWithApi, routeFetch } from './test/helpers';
import { MonitoringPage } from './pages/MonitoringPage';
import { HealthBanner } from './components/HealthBanner';
import { models } from './test/fixtures';

describe('App shell', () => {
  it('marks the current page in the navigation and routes by hash', async () => {
    const f = routeFetch({
      'GET /api/v1/health': { body: { status: 'ok', services: {} } },
      'GET /api/v1/uploads': { body: { uploads: [] } },
      'GET /api/v1/monitoring': { body: { services: [], uploads: [] } },
      'GET /api/v1/models/champion/history': { body: { changes: [] } },
    });
    renderWithApi(<App />, makeClient(f.fetch));
    expect(screen.getByRole('link', { name: 'Upload' })).toHaveAttribute('aria-current', 'page');
    expect(screen.getByRole('heading', { level: 1, name: 'Upload transactions' })).toBeInTheDocument();
    act(() => {
      window.location.hash = '#/monitoring';
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    });
    expect(await screen.findByRole('heading', { level: 1, name: 'Monitoring' })).toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'Monitoring' })).toHaveAttribute('aria-current', 'page');
    expect(document.title).toBe('Monitoring · Fraud detection');
  });
});

describe('HealthBanner', () => {
  it('shows a clear banner when the backend is unreachable', async () => {
    const down = (() => Promise.reject(new TypeError('Failed to fetch'))) as unknown as typeof fetch;
    renderWithApi(<HealthBanner />, makeClient(down));
    expect(await screen.findByRole('alert')).toHaveTextContent('The backend is unreachable.');
  });

  it('names the services that are not serving when degraded', async () => {
    const f = routeFetch({
      'GET /api/v1/health': { status: 503, body: { status: 'degraded', services: { ingest: 'SERVING', training: 'NOT_SERVING' } } },
    });
    renderWithApi(<HealthBanner />, makeClient(f.fetch));
    expect(await screen.findByRole('status')).toHaveTextContent('Not serving: training (not_serving).');
  });

  it('shows nothing when every service is serving', async () => {
    const f = routeFetch({ 'GET /api/v1/health': { body: { status: 'ok', services: { ingest: 'SERVING' } } } });
    const { container } = renderWithApi(<HealthBanner />, makeClient(f.fetch));
    await act(async () => undefined);
    expect(f.seen).toHaveLength(1);
    expect(container).toBeEmptyDOMElement();
  });
});

describe('MonitoringPage', () => {
  it('shows service health, volume per upload, key counters and the champion age', async () => {
    const f = routeFetch({
      'GET /api/v1/monitoring': {
        body: {
          services: [
            { name: 'inference', healthy: true, metrics: { fraud_inference_reloads_total: 3, fraud_rpc_latency_seconds_sum: 1.25, go_threads: 9 } },
            { name: 'training', healthy: false, metrics: {} },
          ],
          champion: models[1],
          championSince: new Date(Date.now() - 2 * 3600 * 1000 - 5 * 60 * 1000).toISOString(),
          uploads: [
            { id: '1', rows: '20000', frauds: '34', predictedFrauds: '30', time: '2024-05-01T10:00:00Z' },
            { id: '2', rows: '10000', frauds: '20', predictedFrauds: '25', time: '2024-05-01T11:00:00Z' },
          ],
        },
      },
      'GET /api/v1/models/champion/history': { body: { changes: [] } },
    });
    renderWithApi(<MonitoringPage />, makeClient(f.fetch));
    expect(await screen.findByText('unhealthy')).toBeInTheDocument();
    expect(screen.getByText(/2 uploads, 30,000 rows scored, 55 predicted frauds/)).toBeInTheDocument();
    expect(screen.getByText('2 h 5 min')).toBeInTheDocument();
    const counters = screen.getByRole('table', { name: /Latency, reload and request counters/ });
    expect(counters).toHaveTextContent('fraud_inference_reloads_total');
    expect(counters).toHaveTextContent('fraud_rpc_latency_seconds_sum');
    expect(counters).not.toHaveTextContent('go_threads');
    expect(screen.getByRole('img', { name: /Prediction volume per upload/ }).querySelectorAll('rect.bar')).toHaveLength(2);
    expect(screen.getByRole('img', { name: /Fraud rate per upload/ }).querySelectorAll('path.series')).toHaveLength(2);
  });
});
