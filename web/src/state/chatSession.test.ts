import { describe, expect, it, vi } from 'vitest';
import type { Message } from '../api/types';
import type { StreamOptions } from '../sse/stream';
import { ChatSession } from './chatSession';

const t = '2026-01-01T00:00:00Z';
const m = (id: string, role: 'user' | 'assistant', status: Message['status'], content = id): Message => ({ id, chat_id: 'c1', role, content, status, created_at: t });
const chat = { id: 'c1', title: 'T', model: 'demo', created_at: t, updated_at: t };

function setup(pages: Message[][]) {
  const streams = new Map<string, StreamOptions>();
  const api = {
    get: vi.fn(async () => chat),
    messages: vi.fn(async () => ({ messages: pages.shift() ?? [], next_cursor: '' })),
  };
  const open = vi.fn((url: string, o: StreamOptions) => {
    streams.set(url, o);
    return { close: () => streams.delete(url), done: Promise.resolve(), lastEventId: '' };
  });
  const s = new ChatSession('c1', { api: api as never, open: open as never });
  return { s, streams, api };
}

const ev = (event: string, data: unknown, id = '') => ({ event, data: JSON.stringify(data), id });

describe('ChatSession live events', () => {
  it('another tab regenerating replaces the old answer here too', async () => {
    const { s, streams } = setup([[m('u1', 'user', 'complete'), m('a1', 'assistant', 'complete')], [m('u1', 'user', 'complete'), m('a2', 'assistant', 'pending')]]);
    await s.load();
    const events = streams.get('/api/chats/c1/events')!;
    events.onEvent(ev('message.created', { chat_id: 'c1', assistant_message_id: 'a2' }));
    await vi.waitFor(() => expect(s.getState().messages.map((x) => x.id)).toEqual(['u1', 'a2']));
    // and the new answer's stream is opened
    expect(streams.has('/api/messages/a2/stream')).toBe(true);
    s.dispose();
  });

  it('chat.updated from another tab changes the title', async () => {
    const changed = vi.fn();
    const { s, streams } = setup([[]]);
    (s as unknown as { deps: { onChatChanged: unknown } }).deps.onChatChanged = changed;
    await s.load();
    streams.get('/api/chats/c1/events')!.onEvent(ev('chat.updated', { user_id: 'u', chat: { ...chat, title: 'New title' } }));
    expect(s.getState().chat?.title).toBe('New title');
    expect(changed).toHaveBeenCalledWith(expect.objectContaining({ title: 'New title' }));
    s.dispose();
  });

  it('ignores a live event for its own send in flight', async () => {
    const { s, streams, api } = setup([[]]);
    await s.load();
    (s as unknown as { set: (p: object) => void }).set({ outbox: [{ localId: 'l', clientId: 'c', content: 'x', state: 'sending' }] });
    streams.get('/api/chats/c1/events')!.onEvent(ev('message.created', { assistant_message_id: 'a9' }));
    await new Promise((r) => setTimeout(r, 10));
    expect(api.messages).toHaveBeenCalledTimes(1);
    s.dispose();
  });
});
