import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { models } from '../test/fixtures';
import { makeClient, renderWithApi, routeFetch, type SeenRequest } from '../test/helpers';
import { ModelsPage } from './ModelsPage';

function setup(promote: (req: SeenRequest) => { status?: number; body?: unknown }) {
  let champion = '2';
  const f = routeFetch({
    'GET /api/v1/models': () => ({
      body: { models: models.map((m) => ({ ...m, isChampion: m.version === champion })) },
    }),
    'GET /api/v1/models/champion': () => ({
      body: { model: { ...models.find((m) => m.version === champion), isChampion: true }, since: '2024-05-02T11:00:00Z' },
    }),
    'GET /api/v1/models/champion/history': {
      body: {
        changes: [
          { id: '2', version: '2', previousVersion: '1', reason: 'promoted by run 2', actor: 'training', changedAt: '2024-05-02T11:00:00Z' },
          { id: '1', version: '1', previousVersion: '0', reason: 'bootstrap', actor: 'training', changedAt: '2024-05-01T11:00:00Z' },
        ],
      },
    },
    'POST /api/v1/models/3/promote': (req) => {
      const r = promote(req);
      if ((r.status ?? 200) === 200) champion = '3';
      return r;
    },
  });
  renderWithApi(<ModelsPage />, makeClient(f.fetch));
  return f;
}

const promoted = {
  body: {
    change: { id: '3', version: '3', previousVersion: '2', reason: 'x', actor: 'admin', changedAt: '2024-05-03T00:00:00Z' },
    reloaded: true,
    message: 'inference now serves v3',
  },
};

describe('ModelsPage', () => {
  it('shows a version\'s operating points: the F1-optimal threshold and the alert budgets', async () => {
    const withBudgets = models.map((m) =>
      m.version === '2'
        ? {
            ...m,
            manifest: {
              ...m.manifest,
              threshold: 0.42,
              validationMetrics: { ...m.manifest?.validationMetrics, precision: 0.8, recall: 0.7 },
              budgetThresholds: [
                { alertFraction: 0.001, threshold: 0.97, precision: 0.95, recall: 0.4, alerts: '12' },
                { alertFraction: 0.005, threshold: 0.61, precision: 0.5, recall: 0.85, alerts: '60' },
              ],
            },
          }
        : m,
    );
    const f = routeFetch({
      'GET /api/v1/models': { body: { models: withBudgets } },
      'GET /api/v1/models/champion': { body: {} },
      'GET /api/v1/models/champion/history': { body: { changes: [] } },
    });
    renderWithApi(<ModelsPage selected="2" />, makeClient(f.fetch));
    const table = await screen.findByRole('table', { name: 'Operating points (validation rows)' });
    const rows = within(table).getAllByRole('row').slice(1);
    expect(rows.map((r) => r.textContent)).toEqual([
      'F1-optimal (serving)0.42000.80000.7000',
      'Top 0.1% of transactions (12 alerts)0.97000.95000.4000',
      'Top 0.5% of transactions (60 alerts)0.61000.50000.8500',
    ]);
  });

  it('lists versions with the champion badge and the champion history', async () => {
    setup(() => promoted);
    const registry = await screen.findByRole('table', { name: /Registered model versions/ });
    const rows = within(registry).getAllByRole('row').slice(1);
    expect(rows.map((r) => within(r).getAllByRole('cell')[1].textContent?.trim())).toEqual(['v3', 'v2 champion', 'v1']);
    expect(rows[0]).toHaveTextContent('0.8300');
    expect(rows[0]).toHaveTextContent('parts 0-3');
    expect(screen.getByRole('table', { name: /Champion changes/ })).toHaveTextContent('promoted by run 2');
    const championPanel = screen.getByRole('heading', { name: 'Champion' }).closest('section')!;
    expect(championPanel).toHaveTextContent('v2 — mlp');
    expect(within(championPanel).getByRole('button', { name: 'Roll back to v1' })).toBeInTheDocument();
  });

  it('promotes only after confirmation, asks for the token on 401 and retries with it', async () => {
    const calls: SeenRequest[] = [];
    const f = setup((req) => {
      calls.push(req);
      return req.headers.Authorization === 'Bearer tok-123'
        ? promoted
        : { status: 401, body: { code: 'UNAUTHENTICATED', message: 'missing or wrong bearer token' } };
    });
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Promote v3' }));

    const dialog = screen.getByRole('dialog', { name: 'Promote v3?' });
    expect(dialog).toHaveTextContent('The current champion is v2.');
    expect(calls).toHaveLength(0);
    const reason = within(dialog).getByLabelText(/Reason/);
    await user.clear(reason);
    await user.type(reason, 'better on P4');
    await user.click(within(dialog).getByRole('button', { name: 'Promote v3' }));

    const tokenDialog = await screen.findByRole('dialog', { name: 'Admin token' });
    expect(calls).toHaveLength(1);
    expect(calls[0].headers.Authorization).toBeUndefined();
    expect(within(tokenDialog).getByLabelText('Token')).toHaveFocus();
    await user.type(within(tokenDialog).getByLabelText('Token'), 'tok-123');
    await user.click(within(tokenDialog).getByRole('button', { name: 'Use token' }));

    expect(await screen.findByText(/Champion is now v3/)).toBeInTheDocument();
    expect(calls).toHaveLength(2);
    expect(calls[1].body).toEqual({ reason: 'better on P4' });
    expect(sessionStorage.getItem('fraud.adminToken')).toBe('tok-123');
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(screen.getByText(/inference now serves v3/)).toBeInTheDocument();
    // The registry was reloaded: v3 now carries the champion badge.
    const registry = screen.getByRole('table', { name: /Registered model versions/ });
    await within(registry).findByText((_, el) => el?.tagName === 'TD' && el.textContent === 'v3 champion');
    expect(f.seen.filter((r) => r.url.pathname === '/api/v1/models').length).toBeGreaterThanOrEqual(2);
  });

  it('does nothing when the confirmation is cancelled (Escape)', async () => {
    const calls: SeenRequest[] = [];
    setup((req) => {
      calls.push(req);
      return promoted;
    });
    const user = userEvent.setup();
    await screen.findByRole('table', { name: /Registered model versions/ });
    const championPanel = screen.getByRole('heading', { name: 'Champion' }).closest('section')!;
    const button = within(championPanel).getByRole('button', { name: 'Roll back to v1' });
    await user.click(button);
    expect(screen.getByRole('dialog', { name: 'Roll back to v1?' })).toBeInTheDocument();
    await user.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(calls).toHaveLength(0);
    expect(button).toHaveFocus();
  });

  it('shows the server error inside the dialog when the promotion is refused', async () => {
    sessionStorage.setItem('fraud.adminToken', 'tok');
    setup(() => ({ status: 409, body: { code: 'ABORTED', message: 'the champion changed meanwhile' } }));
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Promote v3' }));
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Promote v3' }));
    expect(await within(screen.getByRole('dialog')).findByRole('alert')).toHaveTextContent('the champion changed meanwhile (ABORTED)');
  });

  it('compares two ticked versions side by side with overlaid PR curves', async () => {
    setup(() => promoted);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('checkbox', { name: 'Compare version 3' }));
    await user.click(screen.getByRole('checkbox', { name: 'Compare version 1' }));
    const panel = screen.getByRole('heading', { name: 'Comparison: v3 vs v1' }).closest('section')!;
    const table = within(panel).getByRole('table', { name: 'Metrics side by side' });
    const auprcRow = within(table).getByRole('row', { name: /^AUPRC/ });
    expect(within(auprcRow).getAllByRole('cell').map((c) => c.textContent)).toEqual(['0.8500', '0.7300', '0.8300', '0.7100']);
    expect(panel.querySelectorAll('path.series')).toHaveLength(2);
  });
});
