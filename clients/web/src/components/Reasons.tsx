// Reason codes of one scored row: its top features as signed horizontal bars (to the right, in
// the fraud colour, for what pushed the score up; to the left for what pulled it down), each with
// the feature's value and its contribution to the log-odds.

import { fmtNum, num, num0 } from '../api/format';
import type { Explanation } from '../api/types';

/** Signed contribution with an explicit sign: "+1.234" / "−0.500". */
export function fmtSigned(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return 'n/a';
  return `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(digits)}`;
}

export function ReasonBars({ explanation, caption = 'Top reasons' }: { explanation: Explanation; caption?: string }) {
  const top = explanation.top ?? [];
  // Bars share one scale: the largest |contribution| shown fills half the track.
  const scale = Math.max(1e-12, ...top.map((c) => Math.abs(num0(c.contribution))));
  return (
    <figure className="reasons">
      <figcaption>{caption}</figcaption>
      <table className="reasons-table">
        <thead>
          <tr>
            <th scope="col">Feature</th>
            <th scope="col" className="num">
              Value
            </th>
            <th scope="col">Effect</th>
            <th scope="col" className="num">
              Log-odds
            </th>
          </tr>
        </thead>
        <tbody>
          {top.map((c) => {
            const v = num0(c.contribution);
            const width = `${((Math.abs(v) / scale) * 50).toFixed(1)}%`;
            const up = v >= 0;
            return (
              <tr key={c.index ?? c.feature} data-feature={c.feature}>
                <th scope="row">{c.feature}</th>
                <td className="num">{fmtNum(c.value, 3)}</td>
                <td>
                  <div
                    className="reason-track"
                    role="img"
                    aria-label={`${c.feature} ${up ? 'raises' : 'lowers'} the fraud score by ${Math.abs(v).toFixed(3)} log-odds`}
                  >
                    <span
                      className={`reason-bar ${up ? 'up' : 'down'}`}
                      style={up ? { left: '50%', width } : { right: '50%', width }}
                    />
                  </div>
                </td>
                <td className={`num ${up ? 'reason-up' : 'reason-down'}`}>{fmtSigned(v)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p className="muted reasons-sum">
        Log-odds {fmtNum(explanation.margin, 3)} = baseline {fmtNum(explanation.bias, 3)}
        {top.length > 0 && ' + the reasons above'}
        {Number.isFinite(num(explanation.rest)) && ` ${fmtSigned(num0(explanation.rest))} from the other features`}
      </p>
    </figure>
  );
}
