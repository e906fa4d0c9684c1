// Score histogram split by label (normal / fraud / unlabelled), with a linear/log switch.

import { useState } from 'react';
import { num0 } from '../api/format';
import type { ScoreBin } from '../api/types';
import { BarChart, type BarSeries } from './BarChart';

export const LABEL_COLORS = { normal: '#0072B2', fraud: '#D55E00', unlabelled: '#595959' };

export function ScoreHistogram({ bins, title = 'Score distribution by label' }: { bins: ScoreBin[] | undefined; title?: string }) {
  const [scale, setScale] = useState<'log' | 'linear'>('log');
  const list = bins ?? [];
  const categories = list.map((b) => `${num0(b.lower).toFixed(2)}`);
  const candidates: BarSeries[] = [
    { name: 'normal', values: list.map((b) => num0(b.countNormal)), color: LABEL_COLORS.normal },
    { name: 'fraud', values: list.map((b) => num0(b.countFraud)), color: LABEL_COLORS.fraud },
    { name: 'unlabelled', values: list.map((b) => num0(b.countUnlabelled)), color: LABEL_COLORS.unlabelled },
  ];
  const series = candidates.filter((s) => s.values.some((v) => v > 0));
  return (
    <div className="histogram">
      <div className="toolbar" role="group" aria-label="Histogram scale">
        <button type="button" aria-pressed={scale === 'log'} onClick={() => setScale('log')}>
          Log scale
        </button>
        <button type="button" aria-pressed={scale === 'linear'} onClick={() => setScale('linear')}>
          Linear scale
        </button>
      </div>
      <BarChart
        title={title}
        categories={categories}
        series={series}
        xLabel="Score (bin lower edge)"
        yLabel="Rows"
        scale={scale}
        width={720}
        height={300}
        emptyText="No score histogram (the rows were not scored)."
      />
    </div>
  );
}
