import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { labelledSummary } from '../test/fixtures';
import { BudgetTable, SummaryView } from './Summary';

describe('BudgetTable', () => {
  it('shows each budget on the upload beside its validation figures', () => {
    render(
      <BudgetTable
        version="4"
        budgets={[
          { alertFraction: 0.001, threshold: 0.93, alerts: '20', alertRate: 0.001, labelled: true, precision: 0.9, recall: 0.4, validationPrecision: 0.85, validationRecall: 0.45 },
          { alertFraction: 0.01, threshold: 0.25, alerts: '210', alertRate: 0.0105, labelled: false, validationPrecision: 0.2, validationRecall: 0.8 },
        ]}
      />,
    );
    const table = screen.getByRole('table', { name: 'Alert budgets of model v4 on this upload' });
    const rows = within(table).getAllByRole('row');
    expect(rows).toHaveLength(3);
    expect(rows[1]).toHaveTextContent('Top 0.1%');
    expect(rows[1]).toHaveTextContent('0.9300');
    expect(rows[1]).toHaveTextContent('20 (0.10%)');
    expect(rows[1]).toHaveTextContent('0.900');
    expect(rows[1]).toHaveTextContent('0.850');
    // An unlabelled upload has alerts but no precision or recall of its own.
    expect(within(rows[2]).getAllByText('—')).toHaveLength(2);
  });

  it('appears in the upload summary only when the summary carries budgets', () => {
    const { rerender } = render(<SummaryView summary={labelledSummary} />);
    expect(screen.queryByRole('table', { name: /Alert budgets/ })).toBeNull();
    rerender(
      <SummaryView
        summary={{ ...labelledSummary, budgets: [{ alertFraction: 0.005, threshold: 0.5, alerts: '3', alertRate: 0.003 }] }}
      />,
    );
    expect(screen.getByRole('table', { name: /Alert budgets of model v/ })).toBeInTheDocument();
  });
});
