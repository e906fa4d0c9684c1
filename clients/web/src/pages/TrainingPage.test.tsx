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
