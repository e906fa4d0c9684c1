import { act, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { TrainingRun } from '../api/types';
import { models } from '../test/fixtures';
import { FakeEventSource, makeClient, renderWithApi, routeFetch, type SeenRequest } from '../test/helpers';
import { ReplayChart, TrainingPage } from './TrainingPage';

const running: TrainingRun = {
  id: '7',
  status: 'RUN_STATUS_RUNNING',
  trigger: 'manual',
  progress: { phase: 'training', candidate: 'mlp[64,32]', candidatesDone: 1, candidatesTotal: 4, epoch: 3, loss: 0.0421, metric: 0.71 },
  candidates: [],
};

const finished: TrainingRun = {
  ...running,
  status: 'RUN_STATUS_SUCCEEDED',
  modelVersion: '4',
  promoted: true,
  message: 'promoted: AUPRC 0.84 > 0.83 + margin',
  progress: { phase: 'done', candidatesDone: 4, candidatesTotal: 4 },
  candidates: [
    {
      name: 'mlp[64,32]',
      family: 'MODEL_FAMILY_MLP',
      selected: true,
      trainSeconds: 12.5,
      peakRssBytes: '104857600',
      validationMetrics: { auprc: 0.84, rocAuc: 0.97, f1: 0.8 },
      curve: [
        { epoch: 1, trainLoss: 0.3, validationLoss: 0.31, validationAuprc: 0.6 },
        { epoch: 2, trainLoss: 0.1, validationLoss: 0.12, validationAuprc: 0.75 },
        { epoch: 3, trainLoss: 0.05, validationLoss: 0.07, validationAuprc: 0.84 },
      ],
    },
  ],
};

describe('TrainingPage', () => {
  it('starts a run with the chosen families, asking for the token on 401', async () => {
    const posts: SeenRequest[] = [];
    const f = routeFetch({
      'GET /api/v1/training/runs': { body: { runs: [], nextBeforeId: '0' } },
      'GET /api/v1/models': { body: { models: [] } },
      'POST /api/v1/training/runs': (req) => {
        posts.push(req);
        return req.headers.Authorization === 'Bearer abc'
          ? { body: { run: { ...running, status: 'RUN_STATUS_QUEUED' } } }
          : { status: 401, body: { code: 'UNAUTHENTICATED', message: 'missing bearer token' } };
      },
    });
    renderWithApi(<TrainingPage />, makeClient(f.fetch));
    const user = userEvent.setup();
    await user.click(screen.getByRole('checkbox', { name: 'Random forest' }));
    await user.click(screen.getByRole('button', { name: 'Start training' }));
    const dialog = await screen.findByRole('dialog', { name: 'Admin token' });
    await user.type(within(dialog).getByLabelText('Token'), 'abc{Enter}');
    await screen.findByRole('button', { name: 'Start training' });
    expect(posts).toHaveLength(2);
    expect(posts[1].body).toEqual({ families: ['logreg', 'mlp', 'xgboost', 'ensemble'], trigger: 'manual' });
    expect(window.location.hash).toBe('#/training/runs/7');
  });

  it('follows a run live over Server-Sent Events and shows candidates with epoch curves', async () => {
    FakeEventSource.instances = [];
    const f = routeFetch({
      'GET /api/v1/training/runs': { body: { runs: [running] } },
      'GET /api/v1/training/runs/7': { body: { run: running } },
      'GET /api/v1/models': { body: { models } },
    });
    const client = makeClient(f.fetch, { eventSource: FakeEventSource as unknown as new (url: string) => EventSource });
    renderWithApi(<TrainingPage runId="7" />, client);
    expect(await screen.findByTestId('run-progress')).toHaveTextContent(
      'Phase: training · candidate mlp[64,32] · epoch 3 · loss 0.0421 · metric 0.7100',
    );
    expect(screen.getByRole('progressbar', { name: 'Training progress' })).toHaveAttribute('value', '0.25');
    const es = FakeEventSource.instances[0];
    expect(es.url).toBe('/api/v1/training/runs/7/events');
    act(() => es.emit('run', { ...running, progress: { ...running.progress, epoch: 4 } }));
    expect(screen.getByTestId('run-progress')).toHaveTextContent('epoch 4');
    act(() => {
      es.emit('run', finished);
      es.emit('end', '');
    });
    expect(await screen.findByText('promoted: AUPRC 0.84 > 0.83 + margin')).toBeInTheDocument();
    expect(screen.queryByTestId('run-progress')).toBeNull();
    const candidates = screen.getByRole('table', { name: 'Candidates' });
    expect(candidates).toHaveTextContent('mlp[64,32] selected');
    expect(candidates).toHaveTextContent('100.0 MiB');
    const loss = screen.getByRole('img', { name: /loss per epoch/ });
    expect(loss.querySelectorAll('path.series')).toHaveLength(2);
    expect(es.closed).toBe(true);
  });
  it('shows how the run selected: each configuration\'s backtest blocks, then the refit', async () => {
    const backtested: TrainingRun = {
      ...finished,
      params: { selection: 'backtest over 3 block(s)' },
      challengerComparison: { auprc: 0.82, rows: '1000', positives: '20' },
      championComparison: { auprc: 0.78, rows: '1000', positives: '20' },
      championVersionBefore: '3',
      comparisonDifference: { difference: 0.04, ciLow: -0.01, ciHigh: 0.09, shareBetter: 0.84, resamples: 200 },
      backtestGate: {
        championVersion: '3',
        blocks: 2,
        challengerMeanAuprc: 0.85,
        championMeanAuprc: 0.83,
        difference: { difference: 0.02, ciLow: -0.005, ciHigh: 0.045, shareBetter: 0.9, resamples: 200 },
      },
      candidates: [
        {
          name: 'xgboost eta=0.1',
          family: 'MODEL_FAMILY_XGBOOST',
          validationMetrics: { auprc: 0.7 },
          backtest: [
            { timeMin: 100, timeMax: 200, rows: '1000', frauds: '12', trainRows: '5000', auprc: 0.9 },
            { timeMin: 200, timeMax: 300, rows: '1000', frauds: '11', trainRows: '6000', auprc: 0.8 },
            { timeMin: 300, timeMax: 400, rows: '1000', frauds: '10', trainRows: '7000', error: 'boom' },
          ],
          backtestMeanAuprc: 0.5667,
          // backtestWorstAuprc 0 is left out of proto3 JSON
        },
        { name: 'xgboost eta=0.1 (refit)', family: 'MODEL_FAMILY_XGBOOST', isRefit: true, selected: true },
      ],
    };
    const f = routeFetch({
      'GET /api/v1/training/runs': { body: { runs: [backtested] } },
      'GET /api/v1/training/runs/7': { body: { run: backtested } },
      'GET /api/v1/models': { body: { models } },
    });
    renderWithApi(<TrainingPage runId="7" />, makeClient(f.fetch));
    expect(await screen.findByText('backtest over 3 block(s)')).toBeInTheDocument();
    const table = screen.getByRole('table', { name: 'Candidates' });
    const cell = within(table).getByText('0.5667 / 0.0000 (3 blocks)');
    expect(cell).toHaveAttribute(
      'title',
      'block 1: Time 100..200, 1000 rows / 12 frauds, trained on 5000 rows: AUPRC 0.9000\n' +
        'block 2: Time 200..300, 1000 rows / 11 frauds, trained on 6000 rows: AUPRC 0.8000\n' +
        'block 3: Time 300..400, 1000 rows / 10 frauds, trained on 7000 rows: failed (boom)',
    );
    expect(table).toHaveTextContent('xgboost eta=0.1 (refit) selected');
    expect(screen.getByTestId('paired-difference')).toHaveTextContent('+0.0400 (95% −0.0100..+0.0900)');
    expect(screen.getByText(/challenger better in 84% of 200 resamples/)).toBeInTheDocument();
    const gate = screen.getByTestId('backtest-gate');
    expect(gate).toHaveTextContent("2 backtest block(s) newer than v3's training rows");
    expect(gate).toHaveTextContent('0.8500 vs champion 0.8300');
    expect(gate).toHaveTextContent('+0.0200 (95% −0.0050..+0.0450)');
  });
});

describe('ReplayChart', () => {
  it('plots comparison-set AUPRC per version and marks the champion', () => {
    const { container } = renderWithApi(<ReplayChart models={models} />, makeClient(routeFetch({}).fetch));
    const svg = screen.getByRole('img', { name: /Replay/ });
    expect(svg.querySelector('path.series[data-series="comparison set"]')).not.toBeNull();
    expect(svg.querySelectorAll('g[data-series="comparison set"] circle.point')).toHaveLength(3);
    expect(svg.querySelectorAll('g[data-series="champion"] circle.point')).toHaveLength(1);
    expect(container.querySelector('tr.is-champion')).toHaveTextContent('v2');
  });
});
