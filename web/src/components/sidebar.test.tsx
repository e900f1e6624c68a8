import { describe, expect, it } from 'vitest';
import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter } from 'react-router';
import { fakeServer, json } from '../test/fakeServer';
import { chat, modelsList, renderApp, user } from '../test/renderApp';
import { MessageList } from './MessageList';
import type { Message } from '../api/types';

const chats = [
  { ...chat, id: 'c2', title: 'Second', updated_at: '2026-01-03T00:00:00Z' },
  { ...chat, id: 'c1', title: 'First', updated_at: '2026-01-02T00:00:00Z' },
];

describe('sidebar', () => {
  it('lists chats newest first, searches (debounced), renames and deletes with confirmation', async () => {
    let list = [...chats];
    const { requests } = fakeServer({
      'GET /api/auth/me': () => json(200, { user }),
      'GET /api/models': () => json(200, modelsList),
      'GET /api/chats': (r) => {
        const q = new URL(r.url, 'http://x').searchParams.get('q');
        const found = q ? list.filter((c) => c.title.toLowerCase().includes(q.toLowerCase())) : list;
        return json(200, { chats: found, next_cursor: '' });
      },
      'PATCH /api/chats/c1': (r) => {
        const title = (r.body as { title: string }).title;
        list = list.map((c) => (c.id === 'c1' ? { ...c, title } : c));
        return json(200, { chat: list.find((c) => c.id === 'c1') });
      },
      'DELETE /api/chats/c2': () => {
        list = list.filter((c) => c.id !== 'c2');
        return new Response(null, { status: 204 });
      },
    });
    renderApp('/');
    const nav = await screen.findByRole('navigation', { name: 'Chat history' });
    await waitFor(() => expect(within(nav).getAllByRole('link').map((a) => a.textContent)).toEqual(['Second', 'First']));

    await userEvent.type(screen.getByLabelText('Search chats'), 'fir');
    await waitFor(() => expect(within(nav).getAllByRole('link').map((a) => a.textContent)).toEqual(['First']));
    const searches = requests.filter((r) => r.url.startsWith('/api/chats?') && r.url.includes('q='));
    expect(searches.map((r) => r.url)).toEqual(['/api/chats?limit=30&q=fir']);
    await userEvent.clear(screen.getByLabelText('Search chats'));
    await waitFor(() => expect(within(nav).getAllByRole('link')).toHaveLength(2));

    await userEvent.click(screen.getByRole('button', { name: 'Rename chat First' }));
    const input = screen.getByLabelText('Chat title');
    await userEvent.clear(input);
    await userEvent.type(input, 'Renamed{Enter}');
    await waitFor(() => expect(within(nav).getByRole('link', { name: 'Renamed' })).toBeTruthy());

    await userEvent.click(screen.getByRole('button', { name: 'Delete chat Second' }));
    const dialog = screen.getByRole('alertdialog', { name: 'Delete chat?' });
    expect(document.activeElement).toBe(within(dialog).getByRole('button', { name: 'Cancel' }));
    await userEvent.keyboard('{Escape}');
    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(requests.some((r) => r.method === 'DELETE')).toBe(false);

    await userEvent.click(screen.getByRole('button', { name: 'Delete chat Second' }));
    await userEvent.click(within(screen.getByRole('alertdialog')).getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(within(nav).getAllByRole('link').map((a) => a.textContent)).toEqual(['Renamed']));
  });
});

describe('message list', () => {
  it('keeps a bounded number of message elements for a long chat', () => {
    const msgs: Message[] = Array.from({ length: 1000 }, (_, i) => ({
      id: String(i),
      chat_id: 'c',
      role: i % 2 ? 'assistant' : 'user',
      content: `message ${i}`,
      status: 'complete',
      created_at: '',
    }));
    render(
      <MemoryRouter>
        <MessageList
          messages={msgs}
          outbox={[]}
          waiting={{}}
          reconnecting={{}}
          streamErrors={{}}
          hasOlder={false}
          loadingOlder={false}
          onLoadOlder={() => {}}
          onRegenerate={() => {}}
          onRetrySend={() => {}}
          onDiscardSend={() => {}}
          canRegenerate
          followToken={0}
        />
      </MemoryRouter>,
    );
    const items = within(screen.getByRole('list', { name: 'Messages' })).getAllByRole('listitem');
    expect(items.length).toBeGreaterThan(0);
    expect(items.length).toBeLessThan(30);
  });
});
