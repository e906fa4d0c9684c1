import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { makeClient, renderWithApi, routeFetch } from '../test/helpers';
import { fmtSigned, ReasonBars } from './Reasons';
import { parseRow, ScoreOne } from './ScoreOne';

const explanation = {
  top: [
    { feature: 'V14', index: 14, value: -6.5, contribution: 2.4 },
    { feature: 'Amount', index: 29, value: 0, contribution: -1.2 },
    { feature: 'V4', index: 4, value: 3.25, contribution: 0.6 },
  ],
  bias: -5,
  margin: -3.1,
  rest: 0.1,
};

describe('ReasonBars', () => {
  it('draws one signed bar per reason, scaled to the largest, in the order given', () => {
    render(<ReasonBars explanation={explanation} />);
    const rows = within(screen.getByRole('table')).getAllByRole('row').slice(1);
    expect(rows.map((r) => r.getAttribute('data-feature'))).toEqual(['V14', 'Amount', 'V4']);
    const bar = (i: number) => rows[i].querySelector('.reason-bar') as HTMLElement;
    // Up (towards fraud) from the centre to the right; down to the left; the largest fills half.
    expect(bar(0)).toHaveClass('up');
    expect(bar(0).style.left).toBe('50%');
    expect(bar(0).style.width).toBe('50%');
    expect(bar(1)).toHaveClass('down');
    expect(bar(1).style.right).toBe('50%');
    expect(bar(1).style.width).toBe('25%');
    expect(bar(2).style.width).toBe('12.5%');
    expect(rows[0]).toHaveTextContent('V14-6.500+2.400');
    expect(rows[1]).toHaveTextContent('Amount0.000−1.200');
    expect(screen.getByRole('img', { name: 'Amount lowers the fraud score by 1.200 log-odds' })).toBeInTheDocument();
    expect(screen.getByText(/Log-odds -3.100 = baseline -5.000/)).toHaveTextContent('+0.100 from the other features');
  });

  it('formats signs explicitly', () => {
    expect(fmtSigned(0.5)).toBe('+0.500');
    expect(fmtSigned(-2, 1)).toBe('−2.0');
    expect(fmtSigned(NaN)).toBe('n/a');
  });
});

describe('ScoreOne', () => {
  const row = Array.from({ length: 30 }, (_, i) => i / 2);

  it('parses 30 numbers and names what is wrong otherwise', () => {
    expect(parseRow(row.join(', '))).toEqual(row);
    expect(parseRow('1 2 3')).toMatch(/got 3/);
    expect(parseRow([...row.slice(0, 29), 'x'].join(','))).toMatch(/Value 30 \("x"\)/);
  });

  it('draws a row, scores it with explain and shows the score and the reasons', async () => {
    const header = ['Time', ...Array.from({ length: 28 }, (_, i) => `V${i + 1}`), 'Amount'].join(',');
    const f = routeFetch({
      'GET /api/v1/demo/sample.csv': { text: `${header}\n${row.join(',')}\n` },
      'POST /api/v1/score': {
        body: {
          scores: { scores: [0.91], decisions: [true], modelVersion: '7', threshold: 0.4 },
          explanations: [explanation],
        },
      },
    });
    renderWithApi(<ScoreOne />, makeClient(f.fetch));
    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Draw a transaction' }));
    expect(await screen.findByDisplayValue(row.join(', '))).toBeInTheDocument();
    expect(f.seen[0].url.searchParams.get('rows')).toBe('1');
    await user.click(screen.getByRole('button', { name: 'Score and explain' }));
    expect(await screen.findByRole('status')).toHaveTextContent('Score 0.9100 (threshold 0.4000): fraud, model v7');
    const sent = f.seen.find((r) => r.method === 'POST')!;
    expect(sent.body).toEqual({ rows: [row], explain: true });
    expect(screen.getByRole('table')).toHaveTextContent('V14');
  });

  it('refuses a malformed row without calling the server', async () => {
    const f = routeFetch({});
    renderWithApi(<ScoreOne />, makeClient(f.fetch));
    const user = userEvent.setup();
    await user.type(screen.getByRole('textbox'), '1, 2');
    await user.click(screen.getByRole('button', { name: 'Score and explain' }));
    expect(screen.getByRole('alert')).toHaveTextContent('got 2');
    expect(f.seen).toHaveLength(0);
  });
});
