// A fetch stand-in for component tests: routes by method and path, records every
// request, and can answer with JSON or with a server-sent-events body.
import { vi } from 'vitest';

export interface Recorded {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: unknown;
  credentials?: RequestCredentials;
}

type Handler = (req: Recorded) => Response | Promise<Response>;

export const json = (status: number, body?: unknown, headers: Record<string, string> = {}) =>
  new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

export const apiError = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  json(status, { error: { code, message } }, headers);

/** An SSE response whose events are pushed by the test (or given up front). */
export function sse(initial: string[] = []) {
  const enc = new TextEncoder();
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
      for (const s of initial) c.enqueue(enc.encode(s));
    },
  });
  return {
    response: new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }),
    send(id: number, event: string, data: unknown) {
      ctrl.enqueue(enc.encode(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
    },
    close() {
      try {
        ctrl.close();
      } catch {
        /* already closed */
      }
    },
  };
}

export function fakeServer(routes: Record<string, Handler>) {
  const requests: Recorded[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.pathname + input.search : input.url;
    const u = new URL(url, 'http://localhost');
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => (headers[k] = v));
    const rec: Recorded = {
      method: init.method ?? 'GET',
      url: u.pathname + u.search,
      headers,
      body: typeof init.body === 'string' && init.body ? JSON.parse(init.body) : undefined,
      credentials: init.credentials,
    };
    requests.push(rec);
    const key = `${rec.method} ${u.pathname}`;
    const h = routes[key];
    if (!h) return apiError(404, 'not_found', `no fake route for ${key}`);
    return h(rec);
  });
  vi.stubGlobal('fetch', fetchMock);
  return { requests, fetchMock };
}
