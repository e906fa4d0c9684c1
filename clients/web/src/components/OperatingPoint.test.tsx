import { fireEvent, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { OperatingPoint, WhatIfPoint } from '../api/types';
import { makeClient, renderWithApi, routeFetch } from '../test/helpers';
import { budgetIndex, nearestIndex, OperatingPointPanel } from './OperatingPoint';

// A curve of 5 thresholds over 2 days: alerts fall and precision rises as the threshold rises.
const curve: WhatIfPoint[] = [
  { threshold: 0.1, alerts: '400', alertsPerDay: 200, alertFraction: 0.2, trueAlerts: '20', precision: 0.05, recall: 1 },
  { threshold: 0.3, alerts: '100', alertsPerDay: 50, alertFraction: 0.05, trueAlerts: '18', precision: 0.18, recall: 0.9 },
  { threshold: 0.5, alerts: '40', alertsPerDay: 20, alertFraction: 0.02, trueAlerts: '16', precision: 0.4, recall: 0.8 },
  { threshold: 0.7, alerts: '20', alertsPerDay: 10, alertFraction: 0.01, trueAlerts: '12', precision: 0.6, recall: 0.6 },
  { threshold: 0.9, alerts: '5', alertsPerDay: 2.5, alertFraction: 0.0025, trueAlerts: '4', precision: 0.8, recall: 0.2 },
];

function setup() {
  const history: OperatingPoint[] = [];
  const f = routeFetch({
    'GET /api/v1/models/2/what-if': () => ({
      body: {
        version: '2', rows: '2000', frauds: '20', days: 2, firstDay: '0', lastDay: '1', curve,
        current: curve[2], currentSource: history.length ? 'operating_point' : 'manifest', manifest: curve[2],
      },
    }),
    'GET /api/v1/models/2/operating-point': () => ({ body: { threshold: 0.5, manifestThreshold: 0.5, history } }),
    'POST /api/v1/models/2/operating-point': (req) => {
      const b = req.body as { kind: string; value: number; reason: string };
      const point: OperatingPoint = {
        id: String(history.length + 1), version: '2', kind: b.kind as OperatingPoint['kind'], requestedValue: b.value,
        threshold: b.kind === 'OPERATING_POINT_KIND_THRESHOLD' ? b.value : 0.7, previousThreshold: 0.5,
        reason: b.reason, actor: 'admin', changedAt: '2024-05-03T00:00:00Z', expectedAlertsPerDay: 10,
        expectedPrecision: 0.6, expectedRecall: 0.6,
      };
      history.unshift(point);
      return { body: { point, reloaded: true, message: 'v2 serves at threshold 0.7' } };
    },
  });
  renderWithApi(<OperatingPointPanel version="2" />, makeClient(f.fetch));
  return f;
}

describe('OperatingPointPanel', () => {
  it('finds the nearest curve point and the loosest point meeting a budget', () => {
    expect(nearestIndex(curve, 0.52)).toBe(2);
    expect(nearestIndex(curve, 0)).toBe(0);
    expect(budgetIndex(curve, 10)).toBe(3);
    expect(budgetIndex(curve, 49.9)).toBe(2);
    expect(budgetIndex(curve, 1)).toBe(4); // none meets it: the strictest
  });

  it('moves the slider, shows the expected figures live, and applies with a reason', async () => {
    sessionStorage.setItem('fraud.adminToken', 'tok');
    const f = setup();
    const slider = await screen.findByRole('slider', { name: 'Candidate threshold' });
    // Starts at the serving threshold.
    expect(screen.getByTestId('whatif-threshold')).toHaveTextContent('0.5000');
    expect(screen.getByTestId('whatif-alerts')).toHaveTextContent('20.0');
    fireEvent.change(slider, { target: { value: '4' } });
    expect(screen.getByTestId('whatif-threshold')).toHaveTextContent('0.9000');
    expect(screen.getByTestId('whatif-alerts')).toHaveTextContent('2.5');
    expect(screen.getByTestId('whatif-precision')).toHaveTextContent('0.800');
    expect(screen.getByTestId('whatif-recall')).toHaveTextContent('0.200');
    // Only the two initial requests: moving the slider asks the server nothing.
    expect(f.seen.filter((r) => r.method === 'GET')).toHaveLength(2);

    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Apply operating point' }));
    const dialog = screen.getByRole('dialog', { name: 'Change the operating point of v2?' });
    const reason = within(dialog).getByLabelText(/Reason \(recorded in the operating-point history\)/);
    await user.clear(reason);
    await user.type(reason, 'fewer alerts for the weekend');
    await user.click(within(dialog).getByRole('button', { name: 'Apply' }));
    expect(await screen.findByText(/Operating point set: threshold 0.9000/)).toBeInTheDocument();
    const post = f.seen.find((r) => r.method === 'POST');
    expect(post?.body).toEqual({ kind: 'OPERATING_POINT_KIND_THRESHOLD', value: 0.9, reason: 'fewer alerts for the weekend' });
    expect(post?.headers.Authorization).toBe('Bearer tok');
    const table = await screen.findByRole('table', { name: /Operating-point history of v2/ });
    expect(within(table).getByText('fewer alerts for the weekend')).toBeInTheDocument();
  });

  it('applies an alerts-per-day budget as a budget, not as a threshold', async () => {
    sessionStorage.setItem('fraud.adminToken', 'tok');
    const f = setup();
    await screen.findByRole('slider', { name: 'Candidate threshold' });
    const user = userEvent.setup();
    await user.type(screen.getByLabelText('Budget (alerts per day)'), '10');
    await user.click(screen.getByRole('button', { name: 'Find threshold' }));
    expect(screen.getByTestId('whatif-threshold')).toHaveTextContent('0.7000');
    await user.click(screen.getByRole('button', { name: 'Apply operating point' }));
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Apply' }));
    await screen.findByText(/Operating point set/);
    const post = f.seen.find((r) => r.method === 'POST');
    expect(post?.body).toMatchObject({ kind: 'OPERATING_POINT_KIND_ALERTS_PER_DAY', value: 10 });
    expect(await screen.findByText('10.0 alerts/day')).toBeInTheDocument();
  });
});
