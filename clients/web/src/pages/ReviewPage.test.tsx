import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ReviewItem, ReviewQueueResponse } from '../api/types';
import { makeClient, renderWithApi, routeFetch, type SeenRequest } from '../test/helpers';
import { percentileOf, percentileText, reasonsCaption, ReviewPage } from './ReviewPage';

function item(line: number, score: number, extra: Partial<ReviewItem> = {}): ReviewItem {
  const features = Array.from({ length: 30 }, (_, i) => (i === 0 ? 1000 + line : i === 29 ? 50 * line : i / 10));
  return {
    uploadId: '7',
    line: String(line),
    modelVersion: '3',
    score,
    time: features[0],
    amount: features[29],
    features,
    currentLabel: -1,
    explanation: {
      top: [
        { feature: 'V14', index: 14, value: -5, contribution: 1.5 },
        { feature: 'Amount', index: 29, value: features[29], contribution: -0.25 },
      ],
      bias: -6,
      margin: -4.75,
      rest: 0,
    },
    ...extra,
  };
}

const population = {
  modelVersion: '3',
  features: [{ feature: 'Amount', edges: [10, 100, 1000], fractions: [0.2, 0.5, 0.25, 0.05] }],
};

const page1: ReviewQueueResponse = {
  items: [item(12, 0.97), item(40, 0.9), item(5, 0.8, { transactionId: 'tx-5' })],
  nextPageToken: '7:0.8:5:3',
  explanationModelVersion: '3',
  population,
};
const page2: ReviewQueueResponse = { items: [item(99, 0.6)], explanationModelVersion: '3', population };

function setup(queue: (req: SeenRequest) => ReviewQueueResponse = (req) =>
  req.url.searchParams.get('page_token') ? page2 : page1) {
  const { fetch, seen } = routeFetch({
    'GET /api/v1/review/queue': (req) => ({ body: queue(req) }),
    'POST /api/v1/review': (req) =>
      req.headers.Authorization === 'Bearer tok'
        ? { body: { uploadId: '7', line: '12', reviewId: '1', labelOutcome: 'applied', currentLabel: 1 } }
        : { status: 401, body: { code: 'UNAUTHENTICATED', message: 'missing or wrong bearer token' } },
  });
  renderWithApi(<ReviewPage />, makeClient(fetch));
  return seen;
}

const posts = (seen: SeenRequest[]) => seen.filter((r) => r.method === 'POST');

function selectedRow(): HTMLElement {
  const rows = screen.getAllByRole('row').filter((r) => r.getAttribute('aria-selected') === 'true');
  expect(rows).toHaveLength(1);
  return rows[0];
}

describe('percentileOf', () => {
  const ref = population.features[0];
  it('adds the bins below and interpolates inside the containing bin', () => {
    expect(percentileOf(55, ref)).toBeCloseTo(0.2 + 0.5 * 0.5);
    expect(percentileOf(100, ref)).toBeCloseTo(0.7);
    expect(percentileOf(5, ref)).toBeCloseTo(0.1); // open first bin: half of it
    expect(percentileOf(5000, ref)).toBeCloseTo(0.975);
  });
  it('gives only a bound in the open-ended outer bins', () => {
    expect(percentileText(55, ref)).toBe('45.0%');
    expect(percentileText(5, ref)).toBe('≤ 20.0%');
    expect(percentileText(5000, ref)).toBe('> 95.0%');
    expect(percentileText(1, undefined)).toBe('n/a');
  });
  it('is undefined without a usable reference', () => {
    expect(percentileOf(1, undefined)).toBeUndefined();
    expect(percentileOf(1, { feature: 'x', edges: [1], fractions: [1] })).toBeUndefined();
  });
});

describe('reasonsCaption', () => {
  it('names the flagging version for stored reasons and the serving one for computed reasons', () => {
    expect(reasonsCaption({ modelVersion: '3', explanationSource: 'stored', explanationModelVersion: '3' }, '5')).toBe(
      'Top reasons (stored by v3 when it flagged the row)',
    );
    expect(reasonsCaption({ modelVersion: '3', explanationSource: 'computed', explanationModelVersion: '5' }, '5')).toBe(
      'Top reasons (explained by v5, the serving model; none stored)',
    );
    expect(reasonsCaption({ modelVersion: '3' }, '5')).toBe('Top reasons (explained by v5, the serving model; none stored)');
  });
});

describe('ReviewPage', () => {
  beforeEach(() => {
    sessionStorage.setItem('fraud.adminToken', 'tok');
  });

  it('lists the alerts, shows the selected one with its reasons and the population percentile', async () => {
    setup();
    expect(await screen.findByText('upload 7 line 12', { selector: 'td' })).toBeInTheDocument();
    expect(within(selectedRow()).getByText('upload 7 line 12')).toBeInTheDocument();
    const detail = screen.getByRole('region', { name: 'Selected alert' });
    expect(within(detail).getByRole('figure')).toHaveTextContent('V14');
    expect(within(detail).getByText(/explained by v3/)).toBeInTheDocument();
    // Amount 600 lies in (100, 1000]: 0.7 + 0.25 * 500/900 = 83.9%.
    const table = within(detail).getByRole('table', { name: /Features beside the population/ });
    const amount = within(table).getAllByRole('row').find((r) => r.getAttribute('data-feature') === 'Amount');
    expect(amount).toHaveTextContent('83.9%');
    const v1 = within(table).getAllByRole('row').find((r) => r.getAttribute('data-feature') === 'V1');
    expect(v1).toHaveTextContent('n/a');
    // Amount 600 lies inside the reference's inner bins: not marked.
    expect(amount).not.toHaveClass('extreme');
  });

  it('moves the selection with j and k, within the page', async () => {
    const user = userEvent.setup();
    setup();
    await screen.findByText('upload 7 line 12', { selector: 'td' });
    await user.keyboard('j');
    expect(selectedRow()).toHaveTextContent('upload 7 line 40');
    await user.keyboard('jj');
    expect(selectedRow()).toHaveTextContent('transaction tx-5');
    await user.keyboard('kkk');
    expect(selectedRow()).toHaveTextContent('upload 7 line 12');
  });

  it('f marks the selected alert as fraud with the note, and it leaves the list', async () => {
    const user = userEvent.setup();
    const seen = setup();
    await screen.findByText('upload 7 line 12', { selector: 'td' });
    await user.type(screen.getByLabelText('Note (optional)'), 'card reported stolen');
    // Typing f/n/u/j/k in the note reviews nothing.
    expect(posts(seen)).toHaveLength(0);
    (document.activeElement as HTMLElement).blur();
    await user.keyboard('f');
    await waitFor(() => expect(posts(seen)).toHaveLength(1));
    const post = posts(seen)[0];
    expect(post.url.pathname).toBe('/api/v1/review');
    expect(post.headers.Authorization).toBe('Bearer tok');
    expect(post.body).toEqual({ uploadId: '7', line: '12', disposition: 'fraud', note: 'card reported stolen' });
    expect(await screen.findByText(/Marked upload 7 line 12 as fraud \(label applied\)/)).toBeInTheDocument();
    expect(screen.queryByText('upload 7 line 12', { selector: 'td' })).not.toBeInTheDocument();
    expect(selectedRow()).toHaveTextContent('upload 7 line 40');
    expect(screen.getByLabelText('Note (optional)')).toHaveValue('');
  });

  it('n and u send not_fraud and unsure; a live-scored row is named by its transaction id', async () => {
    const user = userEvent.setup();
    const seen = setup();
    await screen.findByText('upload 7 line 12', { selector: 'td' });
    await user.keyboard('n');
    await waitFor(() => expect(posts(seen)).toHaveLength(1));
    expect(posts(seen)[0].body).toEqual({ uploadId: '7', line: '12', disposition: 'not_fraud' });
    await screen.findByText(/as not fraud/);
    await user.keyboard('j');
    expect(selectedRow()).toHaveTextContent('transaction tx-5');
    await user.keyboard('u');
    await waitFor(() => expect(posts(seen)).toHaveLength(2));
    expect(posts(seen)[1].body).toEqual({ transactionId: 'tx-5', disposition: 'unsure' });
  });

  it('asks for the admin token when the review is refused', async () => {
    sessionStorage.removeItem('fraud.adminToken');
    const user = userEvent.setup();
    const seen = setup();
    await screen.findByText('upload 7 line 12', { selector: 'td' });
    await user.keyboard('f');
    const dialog = await screen.findByRole('dialog', { name: 'Admin token' });
    await user.type(within(dialog).getByLabelText('Token'), 'tok');
    await user.click(within(dialog).getByRole('button', { name: 'Use token' }));
    await waitFor(() => expect(posts(seen)).toHaveLength(2));
    expect(posts(seen)[1].headers.Authorization).toBe('Bearer tok');
    expect(await screen.findByText(/Marked upload 7 line 12 as fraud/)).toBeInTheDocument();
  });

  it('pages forward with the next page token and back', async () => {
    const user = userEvent.setup();
    const seen = setup();
    await screen.findByText('upload 7 line 12', { selector: 'td' });
    const gets = () => seen.filter((r) => r.method === 'GET');
    expect(gets()[0].url.searchParams.get('page_size')).toBe('20');
    expect(gets()[0].url.searchParams.get('page_token')).toBeNull();
    await user.click(screen.getByRole('button', { name: 'Next page' }));
    expect(await screen.findByText('upload 7 line 99', { selector: 'td' })).toBeInTheDocument();
    expect(gets()[gets().length - 1].url.searchParams.get('page_token')).toBe('7:0.8:5:3');
    expect(screen.getByRole('button', { name: 'Next page' })).toBeDisabled();
    await user.click(screen.getByRole('button', { name: 'Previous page' }));
    expect(await screen.findByText('upload 7 line 12', { selector: 'td' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Previous page' })).toBeDisabled();
  });

  it('shows the items without reasons when inference could not explain them', async () => {
    setup(() => ({ items: [item(12, 0.97, { explanation: undefined })], explanationError: 'inference is not configured' }));
    expect(await screen.findByText(/Reasons are not available: inference is not configured/)).toBeInTheDocument();
    expect(screen.queryByRole('figure')).not.toBeInTheDocument();
  });
});
