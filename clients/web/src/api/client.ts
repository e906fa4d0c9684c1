// Typed client of the gateway's REST API (services/gateway/API.md). One instance per app; tests inject
// their own fetch, XMLHttpRequest and EventSource implementations.

import { int64 } from './format';
import type {
  ErrorBody,
  GetChampionResponse,
  GetModelResponse,
  GetUploadResponse,
  HealthResponse,
  InferenceModelResponse,
  Int64,
  ListChampionHistoryResponse,
  GetRealisedMetricsResponse,
  ListModelsResponse,
  ListPredictionsResponse,
  ListRunsResponse,
  ListUploadsResponse,
  MonitoringResponse,
  PredictResponse,
  PromoteResponse,
  ReviewQueueResponse,
  GetOperatingPointResponse,
  OperatingPointKind,
  SetOperatingPointResponse,
  WhatIfResponse,
  RunResponse,
  StartRunRequest,
  SubmitReviewRequest,
  SubmitReviewResponse,
  TrainingRun,
  UploadSummary,
} from './types';

export const API_PREFIX = '/api/v1';

/**
 * A failed call. `status` is the HTTP status (0 when the request never got an answer: network
 * failure, abort). `code` is the body's code ("INVALID_ARGUMENT", ...) or a synthetic one:
 * "UNAVAILABLE" (no answer), "CANCELLED" (aborted), "HTTP_<status>" (a body without a code).
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorBody['details'];

  constructor(status: number, code: string, message: string, details?: ErrorBody['details']) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The UploadSummary a rejected upload carries in details.summary (strict validation failure). */
  get summary(): UploadSummary | undefined {
    const s = this.details?.summary;
    return s && typeof s === 'object' ? normalizeKeys(s) : undefined;
  }

  get unauthenticated(): boolean {
    return this.status === 401 || this.code === 'UNAUTHENTICATED';
  }
}

/** Builds an ApiError from a non-2xx answer's status and body text. */
export function errorFromResponse(status: number, statusText: string, text: string): ApiError {
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const b = body as ErrorBody & { error?: string };
    const code = typeof b.code === 'string' && b.code ? b.code : `HTTP_${status}`;
    const message =
      (typeof b.message === 'string' && b.message) ||
      (typeof b.error === 'string' && b.error) ||
      statusText ||
      `HTTP ${status}`;
    const details = b.details && typeof b.details === 'object' ? b.details : undefined;
    return new ApiError(status, code, message, details);
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(status, `HTTP_${status}`, snippet || statusText || `HTTP ${status}`);
}

/** snake_case -> lowerCamelCase for every object key, recursively (leaves values alone). */
export function normalizeKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => normalizeKeys(v)) as unknown as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const key = k.includes('_') ? k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()) : k;
      out[key] = normalizeKeys(v);
    }
    return out as T;
  }
  return value;
}

/** Parses an upload's stored summaryJson (tolerates snake_case names and an UploadResponse wrapper). */
export function parseSummaryJson(text: string | undefined): UploadSummary | undefined {
  if (!text) return undefined;
  try {
    return unwrapSummary(normalizeKeys(JSON.parse(text)));
  } catch {
    return undefined;
  }
}

function unwrapSummary(body: unknown): UploadSummary {
  if (body && typeof body === 'object') {
    const b = body as { summary?: UploadSummary; rowsTotal?: unknown };
    if (b.summary && typeof b.summary === 'object' && b.rowsTotal === undefined) return b.summary;
  }
  return (body ?? {}) as UploadSummary;
}

function unwrapRun(body: unknown): TrainingRun {
  if (body && typeof body === 'object') {
    const b = body as { run?: TrainingRun; id?: unknown };
    if (b.run && typeof b.run === 'object' && b.id === undefined) return b.run;
  }
  return (body ?? {}) as TrainingRun;
}

export type UploadModeChoice = 'strict' | 'lenient';

export interface UploadProgress {
  /** "sending": the body is going out; "processing": all sent, waiting for validation/scoring. */
  phase: 'sending' | 'processing';
  loaded: number;
  total: number;
}

export interface UploadOptions {
  mode: UploadModeChoice;
  fileName?: string;
  onProgress?: (p: UploadProgress) => void;
  /** Validate only (POST /uploads:validate): nothing is stored or scored. */
  validateOnly?: boolean;
}

export interface UploadHandle {
  promise: Promise<UploadSummary>;
  abort: () => void;
}

export interface WatchHandlers {
  onRun: (run: TrainingRun) => void;
  onEnd?: (run: TrainingRun | undefined) => void;
  onError?: (err: unknown) => void;
}

type EventSourceCtor = new (url: string) => EventSource;

export interface ApiClientOptions {
  /** Origin prefix for every path ('' = same origin). */
  baseUrl?: string;
  fetch?: typeof fetch;
  xhr?: () => XMLHttpRequest;
  eventSource?: EventSourceCtor | null;
  /** Returns the admin bearer token, or null when none is known. */
  getToken?: () => string | null;
  /** Polling interval when EventSource is unavailable or failed, ms. */
  pollMs?: number;
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Admin endpoint: send the bearer token. */
  auth?: boolean;
  signal?: AbortSignal;
}

const TERMINAL: ReadonlySet<string> = new Set([
  'RUN_STATUS_SUCCEEDED',
  'RUN_STATUS_FAILED',
  'RUN_STATUS_CANCELLED',
]);

/** True once a run can no longer change. */
export function runFinished(run: TrainingRun | undefined): boolean {
  return !!run && TERMINAL.has(run.status ?? '');
}

export class ApiClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private readonly xhrFactory: () => XMLHttpRequest;
  private readonly eventSourceCtor: EventSourceCtor | null;
  private readonly getToken: () => string | null;
  private readonly pollMs: number;

  constructor(opts: ApiClientOptions = {}) {
    this.baseUrl = (opts.baseUrl ?? '').replace(/\/$/, '');
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.xhrFactory = opts.xhr ?? (() => new XMLHttpRequest());
    this.eventSourceCtor =
      opts.eventSource !== undefined
        ? opts.eventSource
        : typeof EventSource !== 'undefined'
          ? EventSource
          : null;
    this.getToken = opts.getToken ?? (() => null);
    this.pollMs = opts.pollMs ?? 2000;
  }

  /** The absolute (or origin-relative) URL of an API path with its query. */
  url(path: string, query?: RequestOptions['query']): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== '') q.set(k, String(v));
    }
    const qs = q.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ''}`;
  }

  private headers(auth: boolean, json: boolean): Record<string, string> {
    const h: Record<string, string> = { Accept: 'application/json' };
    if (json) h['Content-Type'] = 'application/json';
    if (auth) {
      const token = this.getToken();
      if (token) h.Authorization = `Bearer ${token}`;
    }
    return h;
  }

  /** Sends one JSON request; resolves with the parsed body, rejects with ApiError. */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const hasBody = opts.body !== undefined;
    let res: Response;
    try {
      res = await this.fetchImpl(this.url(path, opts.query), {
        method,
        headers: this.headers(!!opts.auth, hasBody),
        body: hasBody ? JSON.stringify(opts.body) : undefined,
        signal: opts.signal,
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') {
        throw new ApiError(0, 'CANCELLED', 'request cancelled');
      }
      throw new ApiError(0, 'UNAVAILABLE', 'the server could not be reached');
    }
    const text = await res.text();
    if (!res.ok) throw errorFromResponse(res.status, res.statusText, text);
    if (!text) return {} as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, 'BAD_RESPONSE', `the server sent invalid JSON for ${path}`);
    }
  }

  // ---- health and monitoring ----

  /**
   * Service health. A 503 whose body is a health document (degraded) resolves with that
   * document; an unreachable server rejects.
   */
  async health(signal?: AbortSignal): Promise<HealthResponse> {
    let res: Response;
    try {
      res = await this.fetchImpl(this.url(`${API_PREFIX}/health`), {
        headers: { Accept: 'application/json' },
        signal,
        cache: 'no-store',
      });
    } catch {
      throw new ApiError(0, 'UNAVAILABLE', 'the server could not be reached');
    }
    const text = await res.text();
    try {
      const body = JSON.parse(text) as HealthResponse;
      if (body && typeof body === 'object' && typeof body.status === 'string') return body;
    } catch {
      // Not a health document: fall through to the error.
    }
    throw errorFromResponse(res.status || 502, res.statusText, text);
  }

  monitoring(): Promise<MonitoringResponse> {
    return this.request('GET', `${API_PREFIX}/monitoring`);
  }

  // ---- uploads ----

  /**
   * Uploads a CSV as a raw text/csv body with XMLHttpRequest, so the caller sees real upload
   * progress. Rejects with ApiError: 400 with `summary` for a strict validation failure,
   * CANCELLED after abort(), UNAVAILABLE when no answer came.
   */
  upload(file: Blob, opts: UploadOptions): UploadHandle {
    const xhr = this.xhrFactory();
    const total = file.size;
    const path = opts.validateOnly ? `${API_PREFIX}/uploads:validate` : `${API_PREFIX}/uploads`;
    const name = opts.fileName ?? (file instanceof File ? file.name : undefined);
    const url = this.url(path, { mode: opts.mode, file_name: name });
    let aborted = false;
    const promise = new Promise<UploadSummary>((resolve, reject) => {
      const progress = (p: UploadProgress) => opts.onProgress?.(p);
      xhr.open('POST', url);
      xhr.setRequestHeader('Content-Type', 'text/csv');
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.onprogress = (e: ProgressEvent) => {
        const t = e.lengthComputable ? e.total : total;
        progress({ phase: e.loaded >= t && t > 0 ? 'processing' : 'sending', loaded: e.loaded, total: t });
      };
      xhr.upload.onload = () => progress({ phase: 'processing', loaded: total, total });
      xhr.onload = () => {
        const text = xhr.responseText ?? '';
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(unwrapSummary(text ? JSON.parse(text) : {}));
          } catch {
            reject(new ApiError(xhr.status, 'BAD_RESPONSE', 'the server sent invalid JSON'));
          }
        } else {
          reject(errorFromResponse(xhr.status, xhr.statusText, text));
        }
      };
      xhr.onerror = () =>
        reject(
          aborted
            ? new ApiError(0, 'CANCELLED', 'upload cancelled')
            : new ApiError(0, 'UNAVAILABLE', 'the upload failed: the server could not be reached'),
        );
      xhr.onabort = () => reject(new ApiError(0, 'CANCELLED', 'upload cancelled'));
      progress({ phase: 'sending', loaded: 0, total });
      xhr.send(file);
    });
    return {
      promise,
      abort: () => {
        aborted = true;
        xhr.abort();
      },
    };
  }

  listUploads(pageSize = 50, beforeId?: Int64): Promise<ListUploadsResponse> {
    return this.request('GET', `${API_PREFIX}/uploads`, {
      query: { page_size: pageSize, before_id: beforeId === undefined ? undefined : int64(beforeId) },
    });
  }

  getUpload(id: Int64): Promise<GetUploadResponse> {
    return this.request('GET', `${API_PREFIX}/uploads/${int64(id)}`);
  }

  listPredictions(
    id: Int64,
    opts: { order?: 'line' | 'score'; offset?: number; pageSize?: number } = {},
  ): Promise<ListPredictionsResponse> {
    return this.request('GET', `${API_PREFIX}/uploads/${int64(id)}/predictions`, {
      query: { order: opts.order ?? 'line', offset: opts.offset ?? 0, page_size: opts.pageSize ?? 100 },
    });
  }

  /** Fetches a synthetic CSV from the gateway's generator. */
  async demoSample(opts: { rows: number; seed: number; fraudRate?: number; labels?: boolean }): Promise<Blob> {
    let res: Response;
    try {
      res = await this.fetchImpl(
        this.url(`${API_PREFIX}/demo/sample.csv`, {
          rows: opts.rows,
          seed: opts.seed,
          fraud_rate: opts.fraudRate,
          labels: opts.labels ?? true,
        }),
        { headers: { Accept: 'text/csv' } },
      );
    } catch {
      throw new ApiError(0, 'UNAVAILABLE', 'the server could not be reached');
    }
    if (!res.ok) throw errorFromResponse(res.status, res.statusText, await res.text());
    return res.blob();
  }

  // ---- models ----

  listModels(): Promise<ListModelsResponse> {
    return this.request('GET', `${API_PREFIX}/models`);
  }

  /** The champion; `{}` when there is none (an empty body or a 404 both mean "no champion"). */
  async getChampion(): Promise<GetChampionResponse> {
    try {
      return await this.request<GetChampionResponse>('GET', `${API_PREFIX}/models/champion`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return {};
      throw err;
    }
  }

  /** Realised performance per served model version and period (day of Time or upload). */
  realised(by: 'day' | 'upload' = 'day', k = 100): Promise<GetRealisedMetricsResponse> {
    return this.request('GET', `${API_PREFIX}/monitoring/realised`, { query: { by, k } });
  }

  championHistory(): Promise<ListChampionHistoryResponse> {
    return this.request('GET', `${API_PREFIX}/models/champion/history`);
  }

  getModel(version: Int64): Promise<GetModelResponse> {
    return this.request('GET', `${API_PREFIX}/models/${int64(version)}`);
  }

  /** Makes `version` champion (promotion or rollback). Admin. */
  promote(version: Int64, reason: string): Promise<PromoteResponse> {
    return this.request('POST', `${API_PREFIX}/models/${int64(version)}/promote`, {
      body: { reason },
      auth: true,
    });
  }

  /** The what-if curve of `version` ('champion' for the champion) on the latest labelled data. */
  whatIf(version: Int64 | 'champion', days?: number): Promise<WhatIfResponse> {
    const v = version === 'champion' ? 'champion' : int64(version);
    return this.request('GET', `${API_PREFIX}/models/${v}/what-if`, { query: days ? { days } : {} });
  }

  /** A version's operating point, serving threshold and history (newest first). */
  operatingPoint(version: Int64): Promise<GetOperatingPointResponse> {
    return this.request('GET', `${API_PREFIX}/models/${int64(version)}/operating-point`);
  }

  /** Changes a version's operating point (audited; reloads inference for the champion). Admin. */
  setOperatingPoint(
    version: Int64,
    change: { kind: OperatingPointKind; value: number; reason: string },
  ): Promise<SetOperatingPointResponse> {
    return this.request('POST', `${API_PREFIX}/models/${int64(version)}/operating-point`, {
      body: change,
      auth: true,
    });
  }

  /**
   * Scores rows of 30 numbers (Time, V1..V28, Amount) with the serving model; with `explain`,
   * also each row's `topK` reasons (0 or absent = 5).
   */
  score(rows: number[][], opts: { explain?: boolean; topK?: number } = {}): Promise<PredictResponse> {
    const body: { rows: number[][]; explain?: boolean; top_k?: number } = { rows };
    if (opts.explain) body.explain = true;
    if (opts.explain && opts.topK) body.top_k = opts.topK;
    return this.request('POST', `${API_PREFIX}/score`, { body });
  }

  inferenceModel(): Promise<InferenceModelResponse> {
    return this.request('GET', `${API_PREFIX}/inference/model`);
  }

  // ---- review queue ----

  /** A page of unreviewed alerts with their reasons and the population distribution. */
  reviewQueue(opts: { pageSize?: number; pageToken?: string; modelVersion?: Int64 } = {}): Promise<ReviewQueueResponse> {
    return this.request('GET', `${API_PREFIX}/review/queue`, {
      query: {
        page_size: opts.pageSize,
        page_token: opts.pageToken,
        model_version: opts.modelVersion === undefined ? undefined : int64(opts.modelVersion),
      },
    });
  }

  /** Records an analyst's disposition (fraud / not_fraud label the row; unsure does not). Admin. */
  submitReview(body: SubmitReviewRequest): Promise<SubmitReviewResponse> {
    return this.request('POST', `${API_PREFIX}/review`, { body, auth: true });
  }

  // ---- training ----

  /** Starts a run. Admin. int64 ids are sent as strings, as proto JSON expects. */
  startRun(req: StartRunRequest): Promise<RunResponse> {
    const body: StartRunRequest = { ...req };
    if (req.trainUploadIds) body.trainUploadIds = req.trainUploadIds.map((v) => int64(v));
    if (req.comparisonUploadIds) body.comparisonUploadIds = req.comparisonUploadIds.map((v) => int64(v));
    return this.request('POST', `${API_PREFIX}/training/runs`, { body, auth: true });
  }

  listRuns(pageSize = 50, beforeId?: Int64): Promise<ListRunsResponse> {
    return this.request('GET', `${API_PREFIX}/training/runs`, {
      query: { page_size: pageSize, before_id: beforeId === undefined ? undefined : int64(beforeId) },
    });
  }

  getRun(id: Int64): Promise<RunResponse> {
    return this.request('GET', `${API_PREFIX}/training/runs/${int64(id)}`);
  }

  cancelRun(id: Int64): Promise<RunResponse> {
    return this.request('POST', `${API_PREFIX}/training/runs/${int64(id)}/cancel`, { auth: true, body: {} });
  }

  /**
   * Follows a run: Server-Sent Events (`event: run` with a TrainingRun, `event: end`), falling
   * back to polling GetRun when EventSource is missing or the stream breaks. Returns a function
   * that stops watching.
   */
  watchRun(id: Int64, h: WatchHandlers): () => void {
    let stopped = false;
    let last: TrainingRun | undefined;
    let es: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const finish = () => {
      if (stopped) return;
      stopped = true;
      es?.close();
      if (timer) clearTimeout(timer);
      h.onEnd?.(last);
    };
    const deliver = (run: TrainingRun) => {
      if (stopped) return;
      last = run;
      h.onRun(run);
      if (runFinished(run) && !es) finish();
    };
    const poll = async () => {
      if (stopped) return;
      try {
        const r = await this.getRun(id);
        if (r.run) deliver(r.run);
      } catch (err) {
        h.onError?.(err);
      }
      if (!stopped && !runFinished(last)) timer = setTimeout(poll, this.pollMs);
      else finish();
    };

    if (this.eventSourceCtor) {
      es = new this.eventSourceCtor(this.url(`${API_PREFIX}/training/runs/${int64(id)}/events`));
      es.addEventListener('run', (e) => {
        try {
          deliver(unwrapRun(JSON.parse((e as MessageEvent<string>).data)));
        } catch (err) {
          h.onError?.(err);
        }
      });
      es.addEventListener('end', () => finish());
      es.onerror = () => {
        if (stopped) return;
        // The stream broke (or the server closed it without `end`): stop the browser's own
        // reconnection and poll instead until the run finishes.
        es?.close();
        es = null;
        if (runFinished(last)) finish();
        else timer = setTimeout(poll, this.pollMs);
      };
    } else {
      void poll();
    }
    return () => {
      stopped = true;
      es?.close();
      if (timer) clearTimeout(timer);
    };
  }
}
