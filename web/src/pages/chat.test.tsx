import { beforeAll, describe, expect, it } from 'vitest';
import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import type { Message } from '../api/types';
import { apiError, fakeServer, json, sse } from '../test/fakeServer';
import { chat, modelsList, renderApp, user } from '../test/renderApp';

const t = '2026-01-02T00:00:00Z';
const m = (id: string, role: 'user' | 'assistant', content: string, status: Message['status'], extra: Partial<Message> = {}): Message => ({
  id,
  chat_id: 'c1',
  role,
  content,
  status,
  created_at: t,
  ...extra,
});

const base = {
  'GET /api/auth/me': () => json(200, { user }),
  'GET /api/models': () => json(200, modelsList),
  'GET /api/chats': () => json(200, { chats: [chat], next_cursor: '' }),
  'GET /api/chats/c1': () => json(200, { chat }),
  'GET /api/chats/c1/events': () => new Response(new ReadableStream(), { status: 200 }),
};

const items = () => within(screen.getByRole('list', { name: 'Messages' })).getAllByRole('listitem');

describe('chat view', () => {
  // The chat view is loaded lazily; compile it once up front so the first test is not slow.
  beforeAll(() => import('./ChatPage'), 30_000);

  it('marks every answer with its status and offers Regenerate on the last one', async () => {
    fakeServer({
      ...base,
      'GET /api/chats/c1/messages': () =>
        json(200, {
          messages: [
            m('1', 'user', 'first question', 'complete'),
            m('2', 'assistant', 'an answer', 'complete'),
            m('3', 'user', 'second', 'complete'),
            m('4', 'assistant', 'partial', 'cancelled'),
          ],
          next_cursor: '',
        }),
    });
    renderApp('/chats/c1');
    await screen.findByRole('list', { name: 'Messages' });
    const li = items();
    expect(li.map((x) => [x.dataset.role, x.dataset.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'complete'],
      ['user', 'complete'],
      ['assistant', 'cancelled'],
    ]);
    expect(within(li[3]).getByText('Stopped')).toBeTruthy();
    expect(screen.getAllByRole('button', { name: 'Regenerate' })).toHaveLength(1);
    expect(within(li[3]).getByRole('button', { name: 'Regenerate' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Send' })).toBeTruthy();
  });

  it('sends with a client id, streams the answer, and Stop cancels it', async () => {
    const stream = sse();
    let sent: { content: string; client_message_id: string } | undefined;
    const { requests } = fakeServer({
      ...base,
      'GET /api/chats/c1/messages': () => json(200, { messages: [], next_cursor: '' }),
      'POST /api/chats/c1/messages': (r) => {
        sent = r.body as typeof sent;
        return json(202, { user_message: m('u1', 'user', sent!.content, 'complete'), assistant_message: m('a1', 'assistant', '', 'pending') });
      },
      'GET /api/messages/a1/stream': () => stream.response,
      'POST /api/messages/a1/cancel': () => json(202, { message: m('a1', 'assistant', 'Hello', 'streaming') }),
    });
    renderApp('/chats/c1');
    const box = await screen.findByLabelText('Message');
    await userEvent.type(box, 'Hi there{Shift>}{Enter}{/Shift}second line');
    expect((box as HTMLTextAreaElement).value).toBe('Hi there\nsecond line');
    await userEvent.keyboard('{Enter}');
    await waitFor(() => expect(sent?.content).toBe('Hi there\nsecond line'));
    expect(sent?.client_message_id).toMatch(/^[0-9a-f-]{36}$/);
    expect((box as HTMLTextAreaElement).value).toBe('');

    await waitFor(() => expect(items()).toHaveLength(2));
    expect(items()[1].dataset.status).toBe('pending');
    act(() => {
      stream.send(1, 'delta', { seq: 1, text: 'Hel' });
      stream.send(2, 'delta', { seq: 2, text: 'lo' });
    });
    await waitFor(() => expect(items()[1].textContent).toContain('Hello'));
    expect(items()[1].dataset.status).toBe('streaming');
    expect(within(items()[1]).getByText('Generating')).toBeTruthy();

    await userEvent.click(screen.getByRole('button', { name: 'Stop' }));
    expect(requests.some((r) => r.method === 'POST' && r.url === '/api/messages/a1/cancel')).toBe(true);
    act(() => stream.send(3, 'done', { message: m('a1', 'assistant', 'Hello', 'cancelled') }));
    await waitFor(() => expect(items()[1].dataset.status).toBe('cancelled'));
    expect(screen.getByRole('button', { name: 'Send' })).toBeTruthy();
  });

  it('resumes a running answer on load, shows waiting with a countdown, handles reset', async () => {
    const stream = sse();
    const { requests } = fakeServer({
      ...base,
      'GET /api/chats/c1/messages': () => json(200, { messages: [m('1', 'user', 'q', 'complete'), m('2', 'assistant', '', 'streaming')], next_cursor: '' }),
      'GET /api/messages/2/stream': () => stream.response,
      'POST /api/messages/2/cancel': () => json(202, { message: m('2', 'assistant', '', 'streaming') }),
    });
    renderApp('/chats/c1');
    await screen.findByRole('list', { name: 'Messages' });
    act(() => {
      stream.send(1, 'delta', { seq: 1, text: 'old try' });
      stream.send(2, 'reset', { seq: 2 });
      stream.send(3, 'waiting', { reason: 'rate_limited', retry_at: new Date(Date.now() + 30_000).toISOString() });
    });
    const status = await screen.findByText(/Waiting for the model/);
    expect(status.textContent).toMatch(/rate limited\. Trying again in (29|30) s/);
    expect(items()[1].textContent).not.toContain('old try');
    // Stop works while waiting.
    await userEvent.click(screen.getByRole('button', { name: 'Stop' }));
    await waitFor(() => expect(requests.some((r) => r.method === 'POST' && r.url === '/api/messages/2/cancel')).toBe(true));
    act(() => {
      stream.send(4, 'delta', { seq: 4, text: 'new text' });
      stream.send(5, 'done', { message: m('2', 'assistant', 'new text', 'complete') });
    });
    await waitFor(() => expect(items()[1].dataset.status).toBe('complete'));
    expect(screen.queryByText(/Waiting for the model/)).toBeNull();
  });

  it('shows a failed answer with its error and Retry regenerates it', async () => {
    const stream = sse();
    const { requests } = fakeServer({
      ...base,
      'GET /api/chats/c1/messages': () =>
        json(200, {
          messages: [m('1', 'user', 'q', 'complete'), m('2', 'assistant', '', 'failed', { error: { code: 'provider_unavailable', message: 'The model is unavailable.' } })],
          next_cursor: '',
        }),
      'POST /api/chats/c1/regenerate': () => json(202, { assistant_message: m('3', 'assistant', '', 'pending') }),
      'GET /api/messages/3/stream': () => stream.response,
    });
    renderApp('/chats/c1');
    await screen.findByRole('list', { name: 'Messages' });
    expect(items()[1].dataset.status).toBe('failed');
    expect(items()[1].textContent).toContain('The model is unavailable.');
    await userEvent.click(within(items()[1]).getByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(items()[1].dataset.messageId).toBe('3'));
    expect(items()).toHaveLength(2);
    expect(requests.some((r) => r.url === '/api/chats/c1/regenerate')).toBe(true);
    act(() => stream.send(1, 'error', { error: { code: 'provider_error', message: 'Boom.' }, message: m('3', 'assistant', '', 'failed') }));
    await waitFor(() => expect(items()[1].dataset.status).toBe('failed'));
    expect(items()[1].textContent).toContain('Boom.');
  });

  it('explains a 409 generation_in_progress and keeps the text', async () => {
    fakeServer({
      ...base,
      'GET /api/chats/c1/messages': () => json(200, { messages: [], next_cursor: '' }),
      'POST /api/chats/c1/messages': () => apiError(409, 'generation_in_progress', 'An answer is being generated.'),
    });
    renderApp('/chats/c1');
    const box = await screen.findByLabelText('Message');
    await userEvent.type(box, 'hello{Enter}');
    expect((await screen.findByRole('alert')).textContent).toContain('still being generated');
    await waitFor(() => expect((box as HTMLTextAreaElement).value).toBe('hello'));
  });

  it('keeps a send that failed on the network, and Retry sending reuses its client id', async () => {
    let calls = 0;
    const ids: string[] = [];
    fakeServer({
      ...base,
      'GET /api/chats/c1/messages': () => json(200, { messages: [], next_cursor: '' }),
      'POST /api/chats/c1/messages': (r) => {
        ids.push((r.body as { client_message_id: string }).client_message_id);
        if (++calls === 1) throw new TypeError('Failed to fetch');
        return json(202, { user_message: m('u1', 'user', 'hello', 'complete'), assistant_message: m('a1', 'assistant', 'done already', 'complete') });
      },
    });
    renderApp('/chats/c1');
    await userEvent.type(await screen.findByLabelText('Message'), 'hello{Enter}');
    await userEvent.click(await screen.findByRole('button', { name: 'Retry sending' }));
    await waitFor(() => expect(items().map((x) => x.dataset.status)).toEqual(['complete', 'complete']));
    expect(ids).toHaveLength(2);
    expect(ids[0]).toBe(ids[1]);
  });

  it('loads the newest page first and older pages on demand', async () => {
    const pages: string[] = [];
    fakeServer({
      ...base,
      'GET /api/chats/c1/messages': (r) => {
        pages.push(r.url);
        if (r.url.includes('before=')) return json(200, { messages: [m('0a', 'user', 'oldest', 'complete'), m('0b', 'assistant', 'old answer', 'complete')], next_cursor: '' });
        return json(200, { messages: [m('1', 'user', 'newer', 'complete'), m('2', 'assistant', 'newest', 'complete')], next_cursor: 'CUR' });
      },
    });
    renderApp('/chats/c1');
    await screen.findByRole('list', { name: 'Messages' });
    // jsdom has no layout, so the list looks scrolled to the top: the older page loads.
    await waitFor(() => expect(items()).toHaveLength(4));
    expect(items()[0].textContent).toContain('oldest');
    expect(pages[0]).toBe('/api/chats/c1/messages?limit=50');
    expect(pages[1]).toBe('/api/chats/c1/messages?limit=50&before=CUR');
  });

  it('changes the model of the open chat', async () => {
    const { requests } = fakeServer({
      ...base,
      'GET /api/chats/c1/messages': () => json(200, { messages: [], next_cursor: '' }),
      'PATCH /api/chats/c1': (r) => json(200, { chat: { ...chat, ...(r.body as object) } }),
    });
    renderApp('/chats/c1');
    await userEvent.selectOptions(await screen.findByLabelText('Model'), 'big');
    await waitFor(() => expect(requests.find((r) => r.method === 'PATCH')?.body).toEqual({ model: 'big' }));
    expect((screen.getByLabelText('Model') as HTMLSelectElement).value).toBe('big');
  });
});
