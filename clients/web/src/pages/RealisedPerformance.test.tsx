import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { RealisedMetrics } from '../api/types';
import { makeClient, renderWithApi, routeFetch } from '../test/helpers';
import { RealisedPerformance, realisedSeries, servedVersionChanges } from './RealisedPerformance';

const row = (version: string, period: string, extra: Partial<RealisedMetrics> = {}): RealisedMetrics => ({
  modelVersion: version,
  period,
  rowsScored: '1000',
  rowsLabelled: '600',
  unlabelledShare: 0.4,
  alerts: '20',
  alertsLabelled: '10',
  trueAlerts: '5',
  frauds: '8',
  precision: 0.5,
  recall: 0.625,
  auprc: 0.7,
  precisionAtK: 0.6,
  topKLabelled: '50',
  ...extra,
});

const byDay: RealisedMetrics[] = [
  row('2', '0'),
  row('2', '1', { precision: 0.4 }),
  // Day 2: v3 took over (scored most rows); v2 still scored a few.
  row('2', '2', { rowsScored: '100', rowsLabelled: '0', unlabelledShare: 1, alertsLabelled: '0', frauds: '0' }),
  row('3', '2', { precision: 0.8, rowsLabelled: '0', unlabelledShare: 1 }),
  row('3', '3', { precision: 0.9, unlabelledShare: 0.25 }),
];

describe('servedVersionChanges', () => {
  it('marks the periods where the version that scored most rows changes', () => {
    expect(servedVersionChanges(byDay)).toEqual([{ x: 2, label: 'v3' }]);
    expect(servedVersionChanges([row('2', '5'), row('3', '6'), row('2', '7')])).toEqual([
      { x: 6, label: 'v3' },
      { x: 7, label: 'v2' },
    ]);
    expect(servedVersionChanges([])).toEqual([]);
  });
});

describe('realisedSeries', () => {
  it('draws precision and recall per version over the periods that have labels', () => {
    const s = realisedSeries(byDay);
    expect(s.map((x) => x.name)).toEqual(['v2 precision', 'v2 recall', 'v3 precision', 'v3 recall']);
    expect(s[0].points).toEqual([
      { x: 0, y: 0.5 },
      { x: 1, y: 0.4 },
    ]);
    // v3's day 2 has no labelled row yet: only day 3 is drawn.
    expect(s[2].points).toEqual([{ x: 3, y: 0.9 }]);
  });
});

describe('RealisedPerformance', () => {
  function setup() {
    const f = routeFetch({
      'GET /api/v1/monitoring/realised': (req) => ({
        body:
          req.url.searchParams.get('by') === 'upload'
            ? { metrics: [row('3', '17', { unlabelledShare: 0.125 })], k: 100, by: 'REALISED_PERIOD_UPLOAD' }
            : { metrics: byDay, k: Number(req.url.searchParams.get('k')), by: 'REALISED_PERIOD_DAY' },
      }),
      'GET /api/v1/models/champion/history': {
        body: {
          changes: [
            { id: '2', version: '3', previousVersion: '2', reason: 'promoted by run 5', changedAt: '2024-05-02T11:00:00Z' },
          ],
        },
      },
    });
    renderWithApi(<RealisedPerformance />, makeClient(f.fetch));
    return f;
  }

  it('shows the curve with the version change marked, the champion history and the unlabelled share', async () => {
    const f = setup();
    const table = await screen.findByRole('table');
    const rows = within(table).getAllByRole('row');
    expect(rows).toHaveLength(1 + byDay.length);
    // Sorted by period then version; unlabelled share as a percentage.
    expect(within(rows[1]).getAllByRole('cell').map((c) => c.textContent)).toEqual([
      '0', 'v2', '1,000', '600', '40.0%', '20', '5', '0.500', '0.625', '0.700', '0.600',
    ]);
    // No labelled alerts or frauds: shown as a dash, not as 0.
    expect(within(rows[3]).getAllByRole('cell')[7].textContent).toBe('–');
    expect(within(rows[5]).getAllByRole('cell')[4].textContent).toBe('25.0%');
    expect(document.querySelector('[data-event="v3"]')).not.toBeNull();
    expect(screen.getByText(/promoted by run 5/)).toBeTruthy();
    expect(screen.getByText(/v3 \(was v2\)/)).toBeTruthy();
    const call = f.seen.find((r) => r.url.pathname === '/api/v1/monitoring/realised');
    expect(call?.url.searchParams.get('by')).toBe('day');
    expect(call?.url.searchParams.get('k')).toBe('100');
  });

  it('switches to periods by upload', async () => {
    const f = setup();
    await screen.findByRole('table');
    await userEvent.selectOptions(screen.getByLabelText('Period'), 'upload');
    expect(await screen.findByText('12.5%')).toBeTruthy();
    expect(f.seen.some((r) => r.url.searchParams.get('by') === 'upload')).toBe(true);
    expect(screen.getByRole('columnheader', { name: 'Upload' })).toBeTruthy();
  });
});
