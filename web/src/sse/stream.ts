// A resumable server-sent-events client on fetch + ReadableStream (so it can send the
// CSRF-free GET with cookies, Last-Event-ID, and react to 401/404 properly). It
// reconnects with back-off after a dropped connection, resuming after the last id, until
// the caller closes it or a handler says the stream is finished.
import { authedFetch, errorFromResponse, ApiError } from '../api/client';
import { SSEParser, type SSEEvent } from './parser';

export interface StreamOptions {
  /** Resume after this event id (sent as Last-Event-ID and ?after=). */
  lastEventId?: string;
  /** Called for each event; return true when the stream is complete (no reconnect). */
  onEvent: (ev: SSEEvent) => boolean | void;
  /** Called when connected (status 200). */
  onOpen?: () => void;
  /** Called on a dropped connection before the next attempt (attempt counts from 1). */
  onDisconnect?: (attempt: number, err?: unknown) => void;
  /** A fatal failure (e.g. 404, or 401 after refresh): no more attempts. */
  onFatal?: (err: ApiError) => void;
  /** Back-off schedule in ms (default 500 ms doubling to 10 s, with jitter). */
  backoff?: (attempt: number) => number;
  fetchImpl?: typeof authedFetch;
}

export interface StreamHandle {
  close(): void;
  /** Resolves when the stream is finished or closed. */
  done: Promise<void>;
  readonly lastEventId: string;
}

const defaultBackoff = (attempt: number) => Math.min(10_000, 500 * 2 ** Math.max(0, attempt - 1)) * (0.75 + Math.random() * 0.5);

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

export function withAfter(url: string, lastId: string): string {
  if (!lastId) return url;
  const u = new URL(url, 'http://x');
  u.searchParams.set('after', lastId);
  return u.pathname + u.search;
}

export function openStream(url: string, opts: StreamOptions): StreamHandle {
  const ctrl = new AbortController();
  const backoff = opts.backoff ?? defaultBackoff;
  const doFetch = opts.fetchImpl ?? authedFetch;
  let lastId = opts.lastEventId ?? '';

  const run = async () => {
    let attempt = 0;
    while (!ctrl.signal.aborted) {
      let finished = false;
      try {
        const headers: Record<string, string> = { Accept: 'text/event-stream' };
        if (lastId) headers['Last-Event-ID'] = lastId;
        const res = await doFetch(withAfter(url, lastId), {}, {
          method: 'GET',
          credentials: 'same-origin',
          headers,
          cache: 'no-store',
          signal: ctrl.signal,
        });
        if (!res.ok) {
          const err = await errorFromResponse(res);
          // 4xx other than 408/429 will not get better by retrying.
          if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
            opts.onFatal?.(err);
            return;
          }
          throw err;
        }
        if (!res.body) throw new Error('stream has no body');
        attempt = 0;
        opts.onOpen?.();
        const parser = new SSEParser(lastId);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            for (const ev of parser.push(value)) {
              lastId = ev.id;
              if (opts.onEvent(ev) === true) finished = true;
            }
            if (finished) break;
          }
        } finally {
          reader.cancel().catch(() => {});
          lastId = parser.lastEventId;
        }
        if (finished) return;
        // The server closed the stream without a final event: reconnect.
        attempt++;
        opts.onDisconnect?.(attempt);
      } catch (e) {
        if (ctrl.signal.aborted) return;
        attempt++;
        opts.onDisconnect?.(attempt, e);
      }
      await sleep(backoff(attempt), ctrl.signal);
    }
  };

  const done = run().catch(() => {});
  return {
    close: () => ctrl.abort(),
    done,
    get lastEventId() {
      return lastId;
    },
  };
}
