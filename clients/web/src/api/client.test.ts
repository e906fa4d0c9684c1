import { describe, expect, it } from 'vitest';
import { ApiClient, ApiError, errorFromResponse, parseSummaryJson } from './client';
import { compareInt64, fmtInt, fmtRankMetric, int64, num } from './format';
import { FakeEventSource, FakeXhr, routeFetch } from '../test/helpers';
import { rejectedBody } from '../test/fixtures';
import type { TrainingRun } from './types';

function client(routes: Parameters<typeof routeFetch>[0], token: string | null = null) {
  const f = routeFetch(routes);
  const api = new ApiClient({
    fetch: f.fetch,
    xhr: () => new FakeXhr() as unknown as XMLHttpRequest,
    eventSource: null,
    getToken: () => token,
    pollMs: 5,
  });
  return { api, seen: f.seen };
}

describe('error bodies', () => {
  it('turns a JSON error body into an ApiError with code, message and details', async () => {
    const { api } = client({
      'GET /api/v1/models/9': { status: 404, body: { code: 'NOT_FOUND', message: 'no model version 9', details: {} } },
    });
    const err = await api.getModel('9').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 404, code: 'NOT_FOUND', message: 'no model version 9' });
  });

  it('keeps the upload summary carried in details.summary of a 400', () => {
    const err = errorFromResponse(400, 'Bad Request', JSON.stringify(rejectedBody));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.summary?.errors).toHaveLength(2);
    expect(err.summary?.errors?.[0]).toMatchObject({ line: '3', column: 'V4', reason: "not a number: 'abc'" });
  });

  it('falls back to the status and a text snippet when the body is not JSON', async () => {
    const { api } = client({ 'GET /api/v1/models': { status: 502, text: 'Bad Gateway from proxy' } });
    const err = (await api.listModels().catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(502);
    expect(err.code).toBe('HTTP_502');
    expect(err.message).toBe('Bad Gateway from proxy');
  });

  it('reports UNAVAILABLE with status 0 when the server cannot be reached', async () => {
    const api = new ApiClient({
      fetch: (() => Promise.reject(new TypeError('Failed to fetch'))) as unknown as typeof fetch,
    });
    const err = (await api.listModels().catch((e: unknown) => e)) as ApiError;
    expect(err).toMatchObject({ status: 0, code: 'UNAVAILABLE' });
  });

  it('rejects a 2xx answer that is not JSON', async () => {
    const { api } = client({ 'GET /api/v1/models': { status: 200, text: '<html>index</html>' } });
    await expect(api.listModels()).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
  });
});

describe('int64 values', () => {
  it('keeps int64 strings beyond 2^53 exact in responses and in the URLs built from them', async () => {
    const big = '9007199254740993';
    const { api, seen } = client({
      'GET /api/v1/uploads': { body: { uploads: [{ id: big, rows: '20000' }], nextBeforeId: '9007199254740990' } },
      [`GET /api/v1/uploads/${big}`]: { body: { upload: { id: big } } },
    });
    const page = await api.listUploads(20, '9007199254741000');
    expect(page.uploads?.[0].id).toBe(big);
    expect(seen[0].url.searchParams.get('before_id')).toBe('9007199254741000');
    expect(seen[0].url.searchParams.get('page_size')).toBe('20');
    const one = await api.getUpload(page.uploads![0].id!);
    expect(int64(one.upload?.id)).toBe(big);
  });

  it('sends int64 ids of a StartRunRequest as JSON strings', async () => {
    const { api, seen } = client({ 'POST /api/v1/training/runs': { body: { run: { id: '5' } } } }, 't');
    await api.startRun({ families: ['mlp'], trainUploadIds: [1, '2'], comparisonUploadIds: ['9007199254740993'] });
    expect(seen[0].body).toEqual({
      families: ['mlp'],
      trainUploadIds: ['1', '2'],
      comparisonUploadIds: ['9007199254740993'],
    });
  });

  it('formats and compares int64 strings without losing precision', () => {
    expect(fmtInt('9007199254740993')).toBe('9,007,199,254,740,993');
    expect(compareInt64('9007199254740993', '9007199254740992')).toBe(1);
    expect(int64(undefined)).toBe('0');
    expect(int64(12)).toBe('12');
    expect(num('Infinity')).toBe(Infinity);
    expect(num('NaN')).toBeNaN();
    expect(fmtRankMetric({ singleClass: true, auprc: 0 }, 0)).toBe('n/a');
  });
});

describe('auth header', () => {
  it('sends the bearer token on admin calls only', async () => {
    const { api, seen } = client(
      {
        'POST /api/v1/models/3/promote': { body: { change: { version: '3' }, reloaded: true } },
        'GET /api/v1/models': { body: { models: [] } },
      },
      's3cret',
    );
    await api.promote('3', 'better AUPRC');
    await api.listModels();
    expect(seen[0].headers.Authorization).toBe('Bearer s3cret');
    expect(seen[0].headers['Content-Type']).toBe('application/json');
    expect(seen[0].body).toEqual({ reason: 'better AUPRC' });
    expect(seen[1].headers.Authorization).toBeUndefined();
  });

  it('sends no Authorization header when no token is known and reports 401 as unauthenticated', async () => {
    const { api, seen } = client({
      'POST /api/v1/training/runs': { status: 401, body: { code: 'UNAUTHENTICATED', message: 'missing bearer token' } },
    });
    const err = (await api.startRun({}).catch((e: unknown) => e)) as ApiError;
    expect(seen[0].headers.Authorization).toBeUndefined();
    expect(err.unauthenticated).toBe(true);
  });
});

describe('champion', () => {
  it('treats a 404 as "no champion yet"', async () => {
    const { api } = client({ 'GET /api/v1/models/champion': { status: 404, body: { code: 'NOT_FOUND', message: 'no champion' } } });
    await expect(api.getChampion()).resolves.toEqual({});
  });
});

describe('health', () => {
  it('returns the health document of a degraded (503) answer', async () => {
    const { api } = client({
      'GET /api/v1/health': { status: 503, body: { status: 'degraded', services: { ingest: 'NOT_SERVING' } } },
    });
    await expect(api.health()).resolves.toEqual({ status: 'degraded', services: { ingest: 'NOT_SERVING' } });
  });

  it('rejects when the answer is not a health document', async () => {
    const { api } = client({ 'GET /api/v1/health': { status: 502, text: 'upstream down' } });
    await expect(api.health()).rejects.toBeInstanceOf(ApiError);
  });
});

describe('upload', () => {
  function upload(mode: 'strict' | 'lenient' = 'strict') {
    const { api } = client({});
    const file = new File(['Time,V1\n0,1\n'], 'part 1.csv', { type: 'text/csv' });
    const progress: string[] = [];
    const handle = api.upload(file, { mode, onProgress: (p) => progress.push(`${p.phase}:${p.loaded}/${p.total}`) });
    return { handle, xhr: FakeXhr.last!, progress, file };
  }

  it('posts the raw CSV with mode and file name and reports sending then processing', async () => {
    const { handle, xhr, progress, file } = upload('lenient');
    expect(xhr.method).toBe('POST');
    const url = new URL(xhr.url, 'http://ui.test');
    expect(url.pathname).toBe('/api/v1/uploads');
    expect(url.searchParams.get('mode')).toBe('lenient');
    expect(url.searchParams.get('file_name')).toBe('part 1.csv');
    expect(xhr.headers['Content-Type']).toBe('text/csv');
    expect(xhr.body).toBe(file);
    xhr.progress(5, file.size);
    xhr.progress(file.size, file.size);
    xhr.respond(200, { uploadId: '7', rowsTotal: '1' });
    await expect(handle.promise).resolves.toMatchObject({ uploadId: '7' });
    expect(progress).toEqual([
      `sending:0/${file.size}`,
      `sending:5/${file.size}`,
      `processing:${file.size}/${file.size}`,
      `processing:${file.size}/${file.size}`,
    ]);
  });

  it('unwraps an UploadResponse wrapper', async () => {
    const { handle, xhr } = upload();
    xhr.respond(200, { summary: { uploadId: '8', rowsTotal: '1' } });
    await expect(handle.promise).resolves.toMatchObject({ uploadId: '8' });
  });

  it('rejects a strict validation failure with the summary listing the errors', async () => {
    const { handle, xhr } = upload();
    xhr.respond(400, rejectedBody);
    const err = (await handle.promise.catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(400);
    expect(err.summary?.rowsRejected).toBe('2');
  });

  it('rejects with CANCELLED after abort()', async () => {
    const { handle, xhr } = upload();
    handle.abort();
    expect(xhr.aborted).toBe(true);
    await expect(handle.promise).rejects.toMatchObject({ code: 'CANCELLED', status: 0 });
  });

  it('rejects with UNAVAILABLE on a network error', async () => {
    const { handle, xhr } = upload();
    xhr.fail();
    await expect(handle.promise).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});

describe('watchRun', () => {
  const running: TrainingRun = { id: '5', status: 'RUN_STATUS_RUNNING', progress: { phase: 'training', epoch: 2 } };
  const done: TrainingRun = { id: '5', status: 'RUN_STATUS_SUCCEEDED', modelVersion: '4' };

  it('delivers `run` events and stops at `end`', () => {
    FakeEventSource.instances = [];
    const api = new ApiClient({
      fetch: routeFetch({}).fetch,
      eventSource: FakeEventSource as unknown as new (url: string) => EventSource,
    });
    const got: TrainingRun[] = [];
    let ended: TrainingRun | undefined;
    api.watchRun('5', { onRun: (r) => got.push(r), onEnd: (r) => (ended = r) });
    const es = FakeEventSource.instances[0];
    expect(es.url).toBe('/api/v1/training/runs/5/events');
    es.emit('run', running);
    es.emit('run', { run: done });
    es.emit('end', '');
    expect(got.map((r) => r.status)).toEqual(['RUN_STATUS_RUNNING', 'RUN_STATUS_SUCCEEDED']);
    expect(ended?.modelVersion).toBe('4');
    expect(es.closed).toBe(true);
  });

  it('polls GetRun when EventSource is unavailable until the run finishes', async () => {
    let calls = 0;
    const { api } = client({
      'GET /api/v1/training/runs/5': () => ({ body: { run: ++calls < 3 ? running : done } }),
    });
    const ended = await new Promise<TrainingRun | undefined>((resolve) =>
      api.watchRun('5', { onRun: () => undefined, onEnd: resolve }),
    );
    expect(calls).toBe(3);
    expect(ended?.status).toBe('RUN_STATUS_SUCCEEDED');
  });
});

describe('stored summaries', () => {
  it('parses summaryJson written with snake_case names', () => {
    const s = parseSummaryJson(JSON.stringify({ upload_id: '3', rows_total: '10', score_histogram: [{ count_fraud: '2' }] }));
    expect(s?.uploadId).toBe('3');
    expect(s?.scoreHistogram?.[0].countFraud).toBe('2');
  });

  it('returns undefined for missing or broken summaryJson', () => {
    expect(parseSummaryJson('')).toBeUndefined();
    expect(parseSummaryJson('{broken')).toBeUndefined();
  });
});
