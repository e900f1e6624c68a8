import { describe, expect, it } from 'vitest';
import type { Message } from '../api/types';
import { applyEvent, startLive, type Live } from './generation';
import type { SSEEvent } from './parser';

const msg: Message = { id: 'a1', chat_id: 'c1', role: 'assistant', content: 'stale', status: 'pending', created_at: '2026-01-01T00:00:00Z' };
const ev = (id: number, event: string, data: unknown): SSEEvent => ({ id: String(id), event, data: JSON.stringify(data) });
const run = (events: SSEEvent[], from: Live = startLive(msg)) => events.reduce(applyEvent, from);

describe('applyEvent', () => {
  it('appends deltas in order and marks the answer streaming', () => {
    const l = run([ev(1, 'delta', { seq: 1, text: 'Hel' }), ev(2, 'delta', { seq: 2, text: 'lo' })]);
    expect(l.message.content).toBe('Hello');
    expect(l.message.status).toBe('streaming');
    expect(l.seq).toBe(2);
  });

  it('ignores deltas replayed after a resume', () => {
    const l1 = run([ev(1, 'delta', { seq: 1, text: 'a' }), ev(2, 'delta', { seq: 2, text: 'b' })]);
    const l2 = run([ev(2, 'delta', { seq: 2, text: 'b' }), ev(3, 'delta', { seq: 3, text: 'c' })], l1);
    expect(l2.message.content).toBe('abc');
  });

  it('reset clears the partial text, later deltas start over', () => {
    const l = run([ev(1, 'delta', { seq: 1, text: 'half an ans' }), ev(2, 'reset', { seq: 2 }), ev(3, 'delta', { seq: 3, text: 'Fresh' })]);
    expect(l.message.content).toBe('Fresh');
  });

  it('waiting shows the reason and retry time until text flows again', () => {
    const at = '2030-01-01T00:00:10Z';
    const w = run([ev(1, 'waiting', { reason: 'rate_limited', retry_at: at })]);
    expect(w.waiting).toEqual({ reason: 'rate_limited', retryAt: Date.parse(at) });
    expect(w.finished).toBe(false);
    const d = run([ev(2, 'delta', { seq: 2, text: 'ok' })], w);
    expect(d.waiting).toBeUndefined();
  });

  it('applies an event without an id or seq (does not take it for a duplicate)', () => {
    const w = run([{ id: '', event: 'waiting', data: '{"reason":"queued"}' }]);
    expect(w.waiting).toEqual({ reason: 'queued', retryAt: undefined });
    expect(w.seq).toBe(0);
  });

  it('done takes the stored message', () => {
    const final = { ...msg, content: 'Hello world', status: 'complete' };
    const l = run([ev(1, 'delta', { seq: 1, text: 'Hello' }), ev(2, 'done', { message: final })]);
    expect(l.finished).toBe(true);
    expect(l.message.status).toBe('complete');
    expect(l.message.content).toBe('Hello world');
  });

  it('error marks the answer failed with its reason', () => {
    const l = run([
      ev(1, 'delta', { seq: 1, text: 'par' }),
      ev(2, 'error', { error: { code: 'provider_unavailable', message: 'The model is unavailable.' }, message: { ...msg, status: 'failed', content: '' } }),
    ]);
    expect(l.finished).toBe(true);
    expect(l.message.status).toBe('failed');
    expect(l.message.error?.message).toBe('The model is unavailable.');
  });

  it('starts from empty text because the stream replays from the beginning', () => {
    expect(startLive(msg).message.content).toBe('');
  });
});
