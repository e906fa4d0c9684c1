// Test doubles: a routing fetch mock, a scriptable XMLHttpRequest and EventSource, and a render
// helper that wires them into the ApiProvider.

import { render } from '@testing-library/react';
import type { ReactElement } from 'react';
import { vi } from 'vitest';
import { ApiClient } from '../api/client';
import { ApiProvider } from '../api/context';
import { loadToken } from '../api/token';

export interface SeenRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: unknown;
}

export interface Reply {
  status?: number;
  body?: unknown;
  text?: string;
}

export type Handler = Reply | ((req: SeenRequest) => Reply | Promise<Reply>);

/** A fetch mock answering "METHOD /path" routes (query ignored); unknown routes get 404. */
export function routeFetch(routes: Record<string, Handler>) {
  const seen: SeenRequest[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://ui.test');
    const method = (init?.method ?? 'GET').toUpperCase();
    const headers = { ...((init?.headers as Record<string, string>) ?? {}) };
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : init?.body;
    const req = { method, url, headers, body };
    seen.push(req);
    const h = routes[`${method} ${url.pathname}`];
    const reply: Reply = h === undefined
      ? { status: 404, body: { code: 'NOT_FOUND', message: `no route ${method} ${url.pathname}` } }
      : typeof h === 'function'
        ? await h(req)
        : h;
    const text = reply.text ?? (reply.body === undefined ? '' : JSON.stringify(reply.body));
    return new Response(text, {
      status: reply.status ?? 200,
      headers: { 'Content-Type': reply.text !== undefined ? 'text/plain' : 'application/json' },
    });
  });
  return { fetch: fn as unknown as typeof fetch, seen };
}

type Listener = (e: ProgressEvent) => void;

/** A hand-driven XMLHttpRequest: the test calls progress(), respond(), fail(). */
export class FakeXhr {
  static last: FakeXhr | null = null;
  method = '';
  url = '';
  headers: Record<string, string> = {};
  body: unknown;
  status = 0;
  statusText = '';
  responseText = '';
  aborted = false;
  upload: { onprogress: Listener | null; onload: Listener | null } = { onprogress: null, onload: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;

  constructor() {
    FakeXhr.last = this;
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(body: unknown) {
    this.body = body;
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
  progress(loaded: number, total: number) {
    this.upload.onprogress?.({ loaded, total, lengthComputable: true } as ProgressEvent);
    if (loaded >= total) this.upload.onload?.({} as ProgressEvent);
  }
  respond(status: number, body: unknown, statusText = '') {
    this.status = status;
    this.statusText = statusText;
    this.responseText = typeof body === 'string' ? body : JSON.stringify(body);
    this.onload?.();
  }
  fail() {
    this.onerror?.();
  }
}

/** A hand-driven EventSource. */
export class FakeEventSource {
  static instances: FakeEventSource[] = [];
  url: string;
  closed = false;
  onerror: (() => void) | null = null;
  private listeners: Record<string, ((e: MessageEvent) => void)[]> = {};

  constructor(url: string) {
    this.url = url;
    FakeEventSource.instances.push(this);
  }
  addEventListener(type: string, fn: (e: MessageEvent) => void) {
    (this.listeners[type] ??= []).push(fn);
  }
  close() {
    this.closed = true;
  }
  emit(type: string, data: unknown) {
    const e = { data: typeof data === 'string' ? data : JSON.stringify(data) } as MessageEvent;
    for (const fn of this.listeners[type] ?? []) fn(e);
  }
}

export function makeClient(fetchImpl: typeof fetch, extra: Partial<ConstructorParameters<typeof ApiClient>[0]> = {}) {
  return new ApiClient({
    fetch: fetchImpl,
    xhr: () => new FakeXhr() as unknown as XMLHttpRequest,
    eventSource: null,
    getToken: loadToken,
    pollMs: 10,
    ...extra,
  });
}

export function renderWithApi(ui: ReactElement, client: ApiClient) {
  return render(<ApiProvider client={client}>{ui}</ApiProvider>);
}
