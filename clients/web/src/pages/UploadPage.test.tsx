import { act, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { labelledSummary, rejectedBody, unscoredSummary } from '../test/fixtures';
import { FakeXhr, makeClient, renderWithApi, routeFetch } from '../test/helpers';
import { UploadPage } from './UploadPage';
import { UploadDetailPage } from './UploadDetailPage';

function setup() {
  const f = routeFetch({
    'GET /api/v1/uploads': {
      body: {
        uploads: [{ id: '41', fileName: 'old.csv', rows: '100', labelledRows: '100', frauds: '2', modelVersion: '2' }],
        nextBeforeId: '0',
      },
    },
  });
  renderWithApi(<UploadPage />, makeClient(f.fetch));
  return f;
}

async function chooseAndUpload(name = 'part1.csv', mode?: 'Lenient') {
  const user = userEvent.setup();
  const file = new File(['Time,V1\n0,1\n'.repeat(50)], name, { type: 'text/csv' });
  await user.upload(screen.getByLabelText('Choose a CSV file'), file);
  if (mode) await user.click(screen.getByLabelText(/Lenient/));
  await user.click(screen.getByRole('button', { name: 'Upload' }));
  return { user, file, xhr: FakeXhr.last! };
}

describe('UploadPage', () => {
  beforeEach(() => {
    FakeXhr.last = null;
  });

  it('lists stored uploads with links to their pages', async () => {
    setup();
    const link = await screen.findByRole('link', { name: '#41' });
    expect(link).toHaveAttribute('href', '#/uploads/41');
  });

  it('shows progress while sending, then the validating phase, and cancels on request', async () => {
    setup();
    const { user, file, xhr } = await chooseAndUpload();
    act(() => xhr.progress(Math.floor(file.size / 2), file.size));
    expect(screen.getByRole('progressbar', { name: 'Upload progress' })).toHaveAttribute('value', String(Math.floor(file.size / 2) / file.size));
    expect(screen.getByText(/Sending .* \(49%\)|Sending .* \(50%\)/)).toBeInTheDocument();
    act(() => xhr.progress(file.size, file.size));
    expect(screen.getByText(/validating and scoring/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Cancel upload' }));
    expect(xhr.aborted).toBe(true);
    expect(await screen.findByText('Upload cancelled.')).toBeInTheDocument();
  });

  it('renders the error table for a 400 validation failure', async () => {
    setup();
    const { xhr } = await chooseAndUpload('bad.csv');
    expect(new URL(xhr.url, 'http://x').searchParams.get('mode')).toBe('strict');
    await act(async () => xhr.respond(400, rejectedBody, 'Bad Request'));
    expect(screen.getByRole('alert')).toHaveTextContent('The file was rejected; nothing was stored.');
    const table = screen.getByRole('table', { name: /2 problems listed/ });
    const rows = within(table).getAllByRole('row');
    expect(rows).toHaveLength(3);
    expect(within(rows[1]).getAllByRole('cell').map((c) => c.textContent)).toEqual(['3', 'V4 (#5)', "not a number: 'abc'"]);
    expect(within(rows[2]).getAllByRole('cell').map((c) => c.textContent)).toEqual(['6', '—', 'expected 31 fields, found 12']);
  });

  it('renders counts, metric cards, confusion matrix, PR curve, histogram, suspicious rows and drift for a success', async () => {
    setup();
    const { xhr } = await chooseAndUpload('part1.csv', 'Lenient');
    expect(new URL(xhr.url, 'http://x').searchParams.get('mode')).toBe('lenient');
    await act(async () => xhr.respond(200, labelledSummary));

    expect(document.querySelector('dl.cards[aria-label="Metrics"]')).not.toBeNull();
    const card = (name: string) => document.querySelector(`[data-metric="${name}"] .card-value`)?.textContent;
    expect(card('AUPRC')).toBe('0.8123');
    expect(card('ROC-AUC')).toBe('0.9712');
    expect(card('Precision')).toBe('0.7838');
    expect(card('Recall')).toBe('0.8529');
    expect(card('F1')).toBe('0.8169');
    expect(card('Accuracy')).toBe('0.9995');

    const cm = screen.getByRole('table', { name: 'Confusion matrix' });
    expect(cm).toHaveTextContent('TP 29');
    expect(cm).toHaveTextContent('TN 19,958');

    expect(screen.getByRole('img', { name: /Precision-recall curve/ }).querySelector('path.series')).not.toBeNull();
    expect(screen.getByRole('img', { name: /Score distribution by label/ }).querySelectorAll('rect.bar').length).toBeGreaterThan(0);
    expect(screen.getByRole('link', { name: 'v3' })).toHaveAttribute('href', '#/models?v=3');

    const top = screen.getByRole('table', { name: /Most suspicious transactions/ });
    const firstLine = () => within(within(top).getAllByRole('row')[1]).getAllByRole('cell')[0].textContent;
    expect(firstLine()).toBe('1,234');
    await userEvent.click(within(top).getByRole('button', { name: /Score/ }));
    expect(firstLine()).toBe('88');
    expect(within(top).getByRole('columnheader', { name: /Score/ })).toHaveAttribute('aria-sort', 'ascending');

    const drift = screen.getByRole('table', { name: /Drift against/ });
    const flagged = within(drift).getAllByRole('row')[1];
    expect(flagged).toHaveClass('flagged');
    expect(flagged).toHaveTextContent('Amount');
    expect(screen.getByText('1 of 2')).toBeInTheDocument();
  });

  it('shows the scoring message plainly when the rows were not scored', async () => {
    setup();
    const { xhr } = await chooseAndUpload('unlabelled.csv');
    await act(async () => xhr.respond(200, unscoredSummary));
    expect(screen.getByText(/no champion model yet: rows were stored but not scored/)).toBeInTheDocument();
    expect(document.querySelector('dl.cards')).toBeNull();
  });
});

describe('UploadDetailPage', () => {
  it('re-renders the stored summary and pages through predictions', async () => {
    const f = routeFetch({
      'GET /api/v1/uploads/42': {
        body: { upload: { id: '42', fileName: 'part1.csv', rows: '20000', summaryJson: JSON.stringify(labelledSummary) } },
      },
      'GET /api/v1/uploads/42/predictions': (req) => {
        const offset = Number(req.url.searchParams.get('offset'));
        return {
          body: {
            total: '120',
            predictions: Array.from({ length: offset === 100 ? 20 : 50 }, (_, i) => ({
              uploadId: '42',
              line: String(offset + i + 2),
              modelVersion: '3',
              score: 0.01,
              decision: false,
              label: 0,
              features: Array.from({ length: 30 }, (_, j) => j),
            })),
          },
        };
      },
    });
    renderWithApi(<UploadDetailPage id="42" />, makeClient(f.fetch));
    expect(await screen.findByRole('table', { name: 'Rows 1–50 of 120' })).toBeInTheDocument();
    expect(document.querySelector('[data-metric="AUPRC"] .card-value')?.textContent).toBe('0.8123');
    await userEvent.click(screen.getByRole('button', { name: 'Next page' }));
    expect(await screen.findByRole('table', { name: 'Rows 51–100 of 120' })).toBeInTheDocument();
    const last = f.seen[f.seen.length - 1].url;
    expect(last.searchParams.get('offset')).toBe('50');
    expect(last.searchParams.get('page_size')).toBe('50');
    expect(last.searchParams.get('order')).toBe('line');
  });

  it('explains a stored row on request with the serving model and says when it is not the one that scored it', async () => {
    const features = Array.from({ length: 30 }, (_, j) => j / 10);
    const f = routeFetch({
      'GET /api/v1/uploads/7': { body: { upload: { id: '7', fileName: 'p.csv', rows: '2' } } },
      'GET /api/v1/uploads/7/predictions': {
        body: {
          total: '2',
          predictions: [
            { uploadId: '7', line: '2', modelVersion: '3', score: 0.9, decision: true, label: -1, features },
            { uploadId: '7', line: '3', modelVersion: '3', score: 0.1, decision: false, label: -1, features: [] },
          ],
        },
      },
      'POST /api/v1/score': {
        body: {
          scores: { modelVersion: '4', threshold: 0.5, scores: [0.88], decisions: [true] },
          explanations: [
            {
              margin: 2.0,
              bias: -3.0,
              rest: 0.5,
              top: [
                { feature: 'V14', index: 14, value: -6, contribution: 4.8 },
                { feature: 'V12', index: 12, value: 2, contribution: -0.3 },
              ],
            },
          ],
        },
      },
    });
    renderWithApi(<UploadDetailPage id="7" />, makeClient(f.fetch));
    await screen.findByRole('table', { name: 'Rows 1–2 of 2' });
    // A row without its features cannot be explained.
    expect(screen.getByRole('button', { name: 'Why? line 3' })).toBeDisabled();
    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Why? line 2' }));
    expect(await screen.findByText(/top reasons by the serving model v4/)).toBeInTheDocument();
    const score = f.seen.find((r) => r.method === 'POST');
    expect(score?.body).toEqual({ rows: [features], explain: true });
    expect(document.querySelector('[data-feature="V14"]')).toHaveTextContent('+4.800');
    expect(screen.getByText(/Stored score by v3; the serving model v4 scores it 0.88/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Hide line 2' }));
    expect(screen.queryByText(/top reasons by the serving model/)).toBeNull();
  });

  it('shows the reasons stored with an alert without asking the serving model', async () => {
    const features = Array.from({ length: 30 }, (_, j) => j / 10);
    const f = routeFetch({
      'GET /api/v1/uploads/8': { body: { upload: { id: '8', fileName: 'p.csv', rows: '1' } } },
      'GET /api/v1/uploads/8/predictions': {
        body: {
          total: '1',
          predictions: [
            {
              uploadId: '8',
              line: '2',
              modelVersion: '3',
              score: 0.9,
              decision: true,
              label: -1,
              features,
              explanation: {
                margin: 2.2,
                bias: -3.0,
                rest: 0.4,
                top: [{ feature: 'V14', index: 14, value: 1.4, contribution: 4.8 }],
              },
              explanationSource: 'stored',
              explanationModelVersion: '3',
            },
          ],
        },
      },
    });
    renderWithApi(<UploadDetailPage id="8" />, makeClient(f.fetch));
    await screen.findByRole('table', { name: 'Rows 1–1 of 1' });
    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Why? line 2' }));
    expect(await screen.findByText(/top reasons stored by v3 when it scored the row/)).toBeInTheDocument();
    expect(document.querySelector('[data-feature="V14"]')).toHaveTextContent('+4.800');
    expect(f.seen.find((r) => r.method === 'POST')).toBeUndefined();
  });
});
