import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { BarChart } from './BarChart';
import { LineChart } from './LineChart';
import { PrCurveChart, prSeriesPoints } from './PrCurveChart';
import { ScoreHistogram } from './ScoreHistogram';
import { niceTicks } from './scale';

describe('LineChart', () => {
  it('draws one path per series with points and markers when asked', () => {
    const { container } = render(
      <LineChart
        title="Loss"
        xLabel="Epoch"
        yLabel="Loss"
        series={[
          { name: 'train', points: [{ x: 1, y: 0.5 }, { x: 2, y: 0.3 }, { x: 3, y: 0.2 }], markers: true },
          { name: 'validation', points: [{ x: 1, y: 0.6 }, { x: 2, y: 0.4 }, { x: 3, y: 0.35 }], dashed: true },
        ]}
      />,
    );
    const svg = container.querySelector('svg[role="img"]')!;
    expect(svg).not.toBeNull();
    const paths = svg.querySelectorAll('path.series');
    expect(paths).toHaveLength(2);
    expect(paths[0].getAttribute('data-series')).toBe('train');
    expect(paths[0].getAttribute('d')).toMatch(/^M[\d.]+,[\d.]+L[\d.]+,[\d.]+L[\d.]+,[\d.]+$/);
    expect(paths[1].getAttribute('stroke-dasharray')).toBe('6 4');
    expect(svg.querySelectorAll('circle.point')).toHaveLength(3);
    expect(screen.getByRole('img', { name: /Loss.*train \(3 points\), validation \(3 points\)/ })).toBeInTheDocument();
    expect(screen.getByRole('list', { name: 'Legend' })).toHaveTextContent('trainvalidation');
  });

  it('drops non-finite points and shows the empty text when nothing is left', () => {
    const { container } = render(
      <LineChart title="Empty" xLabel="x" yLabel="y" series={[{ name: 's', points: [{ x: 1, y: NaN }] }]} emptyText="Nothing here" />,
    );
    expect(container.querySelector('svg')).toBeNull();
    expect(screen.getByText('Nothing here')).toBeInTheDocument();
  });

  it('places higher values higher on the plot', () => {
    const { container } = render(
      <LineChart title="t" xLabel="x" yLabel="y" series={[{ name: 's', points: [{ x: 0, y: 0 }, { x: 1, y: 1 }], markers: true }]} />,
    );
    const [a, b] = Array.from(container.querySelectorAll('circle.point'));
    expect(Number(b.getAttribute('cx'))).toBeGreaterThan(Number(a.getAttribute('cx')));
    expect(Number(b.getAttribute('cy'))).toBeLessThan(Number(a.getAttribute('cy')));
  });
});

describe('PrCurveChart', () => {
  it('draws a step-wise curve per model on the unit square, sorted by recall', () => {
    const { container } = render(
      <PrCurveChart
        curves={[
          { name: 'v1', points: [{ recall: 1, precision: 0.1 }, { recall: 0, precision: 1 }, { recall: 0.5, precision: 0.9 }] },
          { name: 'v2', points: [{ recall: 0, precision: 1 }, { recall: 1, precision: 0.2 }], dashed: true },
        ]}
      />,
    );
    const paths = container.querySelectorAll('path.series');
    expect(paths).toHaveLength(2);
    expect(paths[0].getAttribute('d')).toContain('H');
    expect(paths[0].getAttribute('d')).toContain('V');
    expect(Array.from(container.querySelectorAll('.x-axis text')).map((t) => t.textContent)).toContain('1.0');
    expect(prSeriesPoints([{ recall: 1, precision: 0.1 }, { recall: 0, precision: 1 }]).map((p) => p.x)).toEqual([0, 1]);
  });

  it('explains a missing curve instead of drawing an empty plot', () => {
    const { container } = render(<PrCurveChart curves={[{ name: 'v1', points: [] }]} />);
    expect(container.querySelector('svg')).toBeNull();
    expect(screen.getByText(/No precision-recall curve/)).toBeInTheDocument();
  });
});

describe('BarChart', () => {
  it('draws one rect per positive value, grouped by series', () => {
    const { container } = render(
      <BarChart
        title="Volume"
        xLabel="Upload"
        yLabel="Rows"
        categories={['#1', '#2', '#3']}
        series={[
          { name: 'a', values: [10, 0, 30] },
          { name: 'b', values: [1, 2, 3] },
        ]}
      />,
    );
    const rects = container.querySelectorAll('rect.bar');
    expect(rects).toHaveLength(5);
    expect(container.querySelectorAll('rect.bar[data-series="a"]')).toHaveLength(2);
    const heights = Array.from(container.querySelectorAll('rect.bar[data-series="a"]')).map((r) => Number(r.getAttribute('height')));
    expect(heights[1]).toBeGreaterThan(heights[0]);
  });
});

describe('ScoreHistogram', () => {
  const bins = [
    { lower: 0, upper: 0.5, countNormal: '1000', countFraud: '1', countUnlabelled: '0' },
    { lower: 0.5, upper: 1, countNormal: '3', countFraud: '20', countUnlabelled: '0' },
  ];

  it('splits the bars by label and leaves out labels with no rows', () => {
    const { container } = render(<ScoreHistogram bins={bins} />);
    expect(container.querySelectorAll('rect.bar[data-series="normal"]')).toHaveLength(2);
    expect(container.querySelectorAll('rect.bar[data-series="fraud"]')).toHaveLength(2);
    expect(container.querySelectorAll('rect.bar[data-series="unlabelled"]')).toHaveLength(0);
    expect(screen.getByRole('img', { name: /log scale/ })).toBeInTheDocument();
  });

  it('switches between log and linear scale', async () => {
    const { container } = render(<ScoreHistogram bins={bins} />);
    const fraudHeight = () => Number(container.querySelectorAll('rect.bar[data-series="fraud"]')[0].getAttribute('height'));
    const logHeight = fraudHeight();
    await userEvent.click(screen.getByRole('button', { name: 'Linear scale' }));
    expect(screen.getByRole('button', { name: 'Linear scale' })).toHaveAttribute('aria-pressed', 'true');
    expect(fraudHeight()).toBeLessThan(logHeight);
  });
});

describe('ticks', () => {
  it('produces round ticks covering the range', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 95, 4)).toEqual([0, 20, 40, 60, 80]);
  });
});
