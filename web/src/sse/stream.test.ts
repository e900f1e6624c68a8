import { describe, expect, it, vi } from 'vitest';
import { openStream, withAfter } from './stream';
import type { SSEEvent } from './parser';

function sseResponse(chunks: string[], status = 200): Response {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
  return new Response(body, { status, headers: { 'Content-Type': 'text/event-stream' } });
}

describe('openStream', () => {
  it('resumes after a dropped connection with Last-Event-ID and ?after=', async () => {
    const calls: { url: string; headers: Record<string, string> }[] = [];
    const responses = [
      sseResponse(['id: 1\nevent: delta\ndata: {"seq":1,"text":"a"}\n\n', 'id: 2\nevent: delta\ndata: {"seq":2,"text":"b"}\n\nid: 3\nevent: de']),
      sseResponse(['id: 3\nevent: delta\ndata: {"seq":3,"text":"c"}\n\nid: 4\nevent: done\ndata: {"message":{}}\n\n']),
    ];
    const fetchImpl = vi.fn(async (url: string, _o: unknown, init?: RequestInit) => {
      calls.push({ url, headers: (init?.headers ?? {}) as Record<string, string> });
      return responses.shift()!;
    });
    const seen: SSEEvent[] = [];
    const h = openStream('/api/messages/m1/stream', {
      onEvent: (e) => {
        seen.push(e);
        return e.event === 'done';
      },
      backoff: () => 0,
      fetchImpl: fetchImpl as never,
    });
    await h.done;
    expect(seen.map((e) => e.id)).toEqual(['1', '2', '3', '4']);
    expect(calls).toHaveLength(2);
    expect(calls[0].url).toBe('/api/messages/m1/stream');
    expect(calls[0].headers['Last-Event-ID']).toBeUndefined();
    expect(calls[1].headers['Last-Event-ID']).toBe('2');
    expect(calls[1].url).toBe('/api/messages/m1/stream?after=2');
  });

  it('stops on a 404 and reports it', async () => {
    const fetchImpl = vi.fn(async () => new Response(JSON.stringify({ error: { code: 'not_found', message: 'Not found.' } }), { status: 404 }));
    const onFatal = vi.fn();
    const h = openStream('/x', { onEvent: () => {}, onFatal, backoff: () => 0, fetchImpl: fetchImpl as never });
    await h.done;
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    expect(onFatal.mock.calls[0][0].code).toBe('not_found');
  });

  it('retries after a server error, then can be closed', async () => {
    let n = 0;
    const fetchImpl = vi.fn(async () => {
      n++;
      if (n === 1) return new Response('oops', { status: 502 });
      return sseResponse([': keepalive\n\n']);
    });
    const onDisconnect = vi.fn();
    const h = openStream('/x', { onEvent: () => {}, onDisconnect, backoff: () => 1, fetchImpl: fetchImpl as never });
    await vi.waitFor(() => expect(fetchImpl.mock.calls.length).toBeGreaterThanOrEqual(3));
    h.close();
    await h.done;
    expect(onDisconnect).toHaveBeenCalled();
  });

  it('adds after= to a URL that already has a query', () => {
    expect(withAfter('/api/x?y=1', '5')).toBe('/api/x?y=1&after=5');
    expect(withAfter('/api/x', '')).toBe('/api/x');
  });
});
