import { act, render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { labelledSummary } from '../test/fixtures';
import { FakeXhr, makeClient, renderWithApi, routeFetch } from '../test/helpers';
import { DemoPage } from '../pages/DemoPage';
import { Dialog } from './Dialog';
import { DriftTable, MetricCards } from './Summary';

describe('DriftTable', () => {
  it('shows the ten largest shifts first and all features on request', async () => {
    const drift = Array.from({ length: 30 }, (_, i) => ({ feature: `V${i}`, psi: i / 100, ks: 0, flagged: false }));
    drift[3] = { feature: 'Amount', psi: 0.5, ks: 0.2, flagged: true };
    render(<DriftTable drift={drift} />);
    const table = screen.getByRole('table', { name: /Drift against/ });
    expect(within(table).getAllByRole('row')).toHaveLength(11);
    expect(within(table).getAllByRole('row')[1]).toHaveTextContent('Amount0.500');
    await userEvent.click(screen.getByRole('button', { name: 'Show all 30 rows' }));
    expect(within(table).getAllByRole('row')).toHaveLength(31);
  });

  it('says "too few rows" instead of a verdict for features the server did not judge', () => {
    const drift = [
      { feature: 'V1', psi: 1.2, ks: 0.6, flagged: false, judged: false },
      { feature: 'V2', psi: 0.01, ks: 0.01, flagged: false, judged: false },
    ];
    render(<DriftTable drift={drift} minRows={200} />);
    const table = screen.getByRole('table', { name: /Drift against/ });
    expect(within(table).getAllByText('too few rows')).toHaveLength(2);
    expect(within(table).queryByText(/large/)).toBeNull();
  });
});

describe('MetricCards', () => {
  it('shows AUPRC and ROC-AUC as n/a when the labels hold one class', () => {
    render(<MetricCards metrics={{ singleClass: true, auprc: 0, rocAuc: 0, precision: 0, recall: 0, f1: 0, accuracy: 1 }} />);
    expect(document.querySelector('[data-metric="AUPRC"] .card-value')).toHaveTextContent('n/a');
    expect(document.querySelector('[data-metric="ROC-AUC"] .card-value')).toHaveTextContent('n/a');
    expect(document.querySelector('[data-metric="Accuracy"] .card-value')).toHaveTextContent('1.0000');
    expect(screen.getByText(/one class only/)).toBeInTheDocument();
  });
});

describe('Dialog', () => {
  it('keeps Tab inside, closes on Escape and gives focus back', async () => {
    const onClose = vi.fn();
    function Harness({ open }: { open: boolean }) {
      return (
        <>
          <button type="button">outside</button>
          {open && (
            <Dialog title="Confirm" onClose={onClose}>
              <button type="button">first</button>
              <button type="button">last</button>
            </Dialog>
          )}
        </>
      );
    }
    const user = userEvent.setup();
    const { rerender } = render(<Harness open={false} />);
    screen.getByRole('button', { name: 'outside' }).focus();
    rerender(<Harness open />);
    expect(screen.getByRole('button', { name: 'first' })).toHaveFocus();
    await user.tab();
    expect(screen.getByRole('button', { name: 'last' })).toHaveFocus();
    await user.tab();
    expect(screen.getByRole('button', { name: 'first' })).toHaveFocus();
    await user.tab({ shift: true });
    expect(screen.getByRole('button', { name: 'last' })).toHaveFocus();
    await user.keyboard('{Escape}');
    expect(onClose).toHaveBeenCalledTimes(1);
    rerender(<Harness open={false} />);
    expect(screen.getByRole('button', { name: 'outside' })).toHaveFocus();
  });
});

describe('DemoPage', () => {
  it('generates and uploads the files one after another with consecutive seeds', async () => {
    const f = routeFetch({
      'GET /api/v1/demo/sample.csv': (req) => ({ text: `Time,V1\n${req.url.searchParams.get('seed')},1\n` }),
    });
    renderWithApi(<DemoPage />, makeClient(f.fetch));
    const user = userEvent.setup();
    await user.clear(screen.getByLabelText('Files'));
    await user.type(screen.getByLabelText('Files'), '2');
    await user.clear(screen.getByLabelText('First seed'));
    await user.type(screen.getByLabelText('First seed'), '7');
    await user.click(screen.getByRole('button', { name: 'Run demo' }));

    for (const [i, seed] of [[0, 7], [1, 8]] as const) {
      await vi.waitFor(() => expect(FakeXhr.last?.url).toContain(`demo-seed${seed}-`));
      const xhr = FakeXhr.last!;
      expect(new URL(xhr.url, 'http://x').searchParams.get('mode')).toBe('strict');
      await act(async () => xhr.respond(200, { ...labelledSummary, uploadId: String(50 + i), fileName: `f${seed}` }));
    }
    expect(await screen.findByText('Demo finished.')).toBeInTheDocument();
    const samples = f.seen.filter((r) => r.url.pathname === '/api/v1/demo/sample.csv');
    expect(samples.map((r) => [r.url.searchParams.get('seed'), r.url.searchParams.get('rows'), r.url.searchParams.get('labels')])).toEqual([
      ['7', '20000', 'true'],
      ['8', '20000', 'true'],
    ]);
    const table = screen.getByRole('table', { name: 'Demo uploads' });
    expect(within(table).getAllByRole('row')).toHaveLength(3);
    expect(within(table).getByRole('link', { name: '#51' })).toHaveAttribute('href', '#/uploads/51');
  });
});
