import { describe, expect, it } from 'vitest';
import { ChatList } from './chatList';
import type { Chat } from '../api/types';
import type { chats as chatApi } from '../api/endpoints';

const chat = (id: string, updated_at: string): Chat =>
  ({ id, title: id, model: 'm', created_at: updated_at, updated_at }) as Chat;

/** A chats API whose list answers only when the test says so. */
function slowApi() {
  const pending: Array<(v: { chats: Chat[]; next_cursor: string }) => void> = [];
  const api = {
    list: () => new Promise<{ chats: Chat[]; next_cursor: string }>((resolve) => pending.push(resolve)),
    remove: async () => undefined,
  } as unknown as typeof chatApi;
  return { api, pending };
}

describe('chat list', () => {
  it('does not bring back a chat deleted while a search was on its way', async () => {
    const { api, pending } = slowApi();
    const list = new ChatList(api);
    const a = chat('a', '2026-01-02T00:00:00Z');
    const b = chat('b', '2026-01-01T00:00:00Z');
    const first = list.search('');
    pending.shift()!({ chats: [a, b], next_cursor: '' });
    await first;
    expect(list.getState().chats.map((c) => c.id)).toEqual(['a', 'b']);

    // A search goes out, then the chat is deleted, then the search answers with it.
    const searching = list.search('x');
    await list.remove('a');
    expect(list.getState().chats.map((c) => c.id)).toEqual(['b']);
    pending.shift()!({ chats: [a, b], next_cursor: 'next' });
    await searching;
    expect(list.getState().chats.map((c) => c.id)).toEqual(['b']);

    // Nor does a later page, or a change event that was on its way.
    const more = list.loadMore();
    pending.shift()!({ chats: [a], next_cursor: '' });
    await more;
    list.upsert({ ...a, updated_at: '2026-01-03T00:00:00Z' });
    expect(list.getState().chats.map((c) => c.id)).toEqual(['b']);

    // Other chats still come and go as before.
    const cleared = list.search('');
    pending.shift()!({ chats: [b], next_cursor: '' });
    await cleared;
    list.upsert(chat('c', '2026-01-04T00:00:00Z'));
    expect(list.getState().chats.map((c) => c.id)).toEqual(['c', 'b']);
  });
});
