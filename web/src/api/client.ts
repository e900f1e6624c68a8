// The one place that talks HTTP to the gateway. Every request is same-origin with the
// session cookie; every unsafe request carries the CSRF header and a JSON body. A 401
// triggers one refresh (shared by concurrent callers) and one retry; if the session is
// really gone, the registered handler sends the person to sign in.
import type { ApiErrorBody } from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds to wait before trying again (429/503), when the server said so. */
  readonly retryAfter?: number;

  constructor(status: number, body: ApiErrorBody, retryAfter?: number) {
    super(body.message || `Request failed (${status})`);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code || 'unknown';
    this.retryAfter = retryAfter ?? body.retry_after;
  }
}

/** A network failure (no HTTP answer at all): the request may or may not have arrived. */
export class NetworkError extends Error {
  constructor(cause: unknown) {
    super('Cannot reach the server. Check your connection and try again.');
    this.name = 'NetworkError';
    this.cause = cause;
  }
}

export const CSRF_HEADER = 'X-Parley-CSRF';

type UnauthenticatedHandler = () => void;
let onUnauthenticated: UnauthenticatedHandler = () => {};

/** Registers what happens when the session has ended (the auth provider sets this). */
export function setUnauthenticatedHandler(fn: UnauthenticatedHandler): void {
  onUnauthenticated = fn;
}

let refreshing: Promise<boolean> | null = null;

/** Asks the gateway to rotate the session cookies. Concurrent callers share one request. */
export function refreshSession(): Promise<boolean> {
  if (!refreshing) {
    refreshing = fetch('/api/auth/refresh', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { [CSRF_HEADER]: '1', 'Content-Type': 'application/json', Accept: 'application/json' },
      body: '{}',
    })
      .then((r) => r.ok)
      .catch(() => false)
      .finally(() => {
        // Let a later expiry trigger a new refresh.
        setTimeout(() => (refreshing = null), 0);
      });
  }
  return refreshing;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  body?: unknown;
  signal?: AbortSignal;
  /** Do not try to refresh or redirect on 401 (login, signup, me at start-up). */
  noAuthRedirect?: boolean;
  headers?: Record<string, string>;
}

const AUTH_FREE = ['/api/auth/login', '/api/auth/signup', '/api/auth/refresh'];

export function buildInit(opts: RequestOptions): RequestInit {
  const method = opts.method ?? 'GET';
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  if (method !== 'GET') {
    headers[CSRF_HEADER] = '1';
    headers['Content-Type'] = 'application/json';
  }
  return {
    method,
    credentials: 'same-origin',
    headers,
    body: method === 'GET' ? undefined : JSON.stringify(opts.body ?? {}),
    signal: opts.signal,
    cache: 'no-store',
  };
}

function parseRetryAfter(h: string | null): number | undefined {
  if (!h) return undefined;
  const n = Number(h);
  if (Number.isFinite(n)) return Math.max(0, Math.ceil(n));
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export async function errorFromResponse(res: Response): Promise<ApiError> {
  let body: ApiErrorBody = { code: 'http_' + res.status, message: '' };
  try {
    const j = await res.json();
    if (j && typeof j === 'object' && j.error && typeof j.error === 'object') body = j.error;
  } catch {
    /* not JSON */
  }
  if (!body.message) body = { ...body, message: defaultMessage(res.status) };
  return new ApiError(res.status, body, parseRetryAfter(res.headers.get('Retry-After')));
}

function defaultMessage(status: number): string {
  if (status === 401) return 'Your session has ended. Please sign in again.';
  if (status === 403) return 'That request was refused.';
  if (status === 404) return 'Not found.';
  if (status === 429) return 'Too many requests. Please wait a moment.';
  if (status >= 500) return 'The server had a problem. Please try again.';
  return `Request failed (${status}).`;
}

async function rawFetch(path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(path, init);
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new NetworkError(e);
  }
}

/**
 * Fetches with session handling: on 401, refresh once and retry; if still 401, call the
 * unauthenticated handler (unless opts.noAuthRedirect) and throw.
 */
export async function authedFetch(path: string, opts: RequestOptions = {}, init?: RequestInit): Promise<Response> {
  const reqInit = init ?? buildInit(opts);
  let res = await rawFetch(path, reqInit);
  if (res.status === 401 && !AUTH_FREE.includes(path)) {
    if (await refreshSession()) res = await rawFetch(path, reqInit);
    if (res.status === 401 && !opts.noAuthRedirect) onUnauthenticated();
  }
  return res;
}

/** JSON request; resolves to the parsed body (undefined for 204), rejects with ApiError. */
export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await authedFetch(path, opts);
  if (!res.ok) throw await errorFromResponse(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A person-readable explanation of any failure. */
export function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 429 || e.code === 'too_many_attempts' || e.code === 'rate_limited') {
      const wait = e.retryAfter;
      return wait ? `${e.message} Try again in ${formatWait(wait)}.` : e.message;
    }
    return e.message;
  }
  if (e instanceof NetworkError) return e.message;
  if (e instanceof Error) return e.message;
  return 'Something went wrong.';
}

export function formatWait(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return s ? `${m} min ${s} s` : `${m} min`;
}
