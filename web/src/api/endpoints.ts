// Typed calls for every endpoint the web app uses (docs/api.md).
import { api } from './client';
import type { Chat, ChatPage, Message, MessagePage, Model, User } from './types';

const enc = encodeURIComponent;

export const auth = {
  me: () => api<{ user: User }>('/api/auth/me', { noAuthRedirect: true }).then((r) => r.user),
  login: (username: string, password: string) =>
    api<{ user: User }>('/api/auth/login', { method: 'POST', body: { username, password }, noAuthRedirect: true }).then(
      // The body also has access_token for API clients; the browser session is the
      // HttpOnly cookie, so the token is deliberately dropped here.
      (r) => r.user,
    ),
  signup: (b: { username: string; email: string; password: string; firstname: string; lastname: string }) =>
    api<{ user: User }>('/api/auth/signup', { method: 'POST', body: b, noAuthRedirect: true }).then((r) => r.user),
  logout: () => api<void>('/api/auth/logout', { method: 'POST', noAuthRedirect: true }),
  /** Ends every session of the account ("log out everywhere"). */
  logoutAll: () => api<void>('/api/auth/logout-all', { method: 'POST', noAuthRedirect: true }),
};

export const models = {
  list: () => api<{ models: Model[] }>('/api/models').then((r) => r.models ?? []),
};

export const chats = {
  list: (p: { limit?: number; cursor?: string; q?: string }, signal?: AbortSignal) => {
    const qs = new URLSearchParams();
    if (p.limit) qs.set('limit', String(p.limit));
    if (p.cursor) qs.set('cursor', p.cursor);
    if (p.q) qs.set('q', p.q);
    return api<ChatPage>(`/api/chats?${qs}`, { signal }).then((r) => ({ chats: r.chats ?? [], next_cursor: r.next_cursor ?? '' }));
  },
  latest: () => api<{ chat: Chat }>('/api/chats/latest').then((r) => r.chat),
  get: (id: string) => api<{ chat: Chat }>(`/api/chats/${enc(id)}`).then((r) => r.chat),
  create: (b: { model?: string; title?: string }) => api<{ chat: Chat }>('/api/chats', { method: 'POST', body: b }).then((r) => r.chat),
  update: (id: string, b: { title?: string; model?: string }) =>
    api<{ chat: Chat }>(`/api/chats/${enc(id)}`, { method: 'PATCH', body: b }).then((r) => r.chat),
  remove: (id: string) => api<void>(`/api/chats/${enc(id)}`, { method: 'DELETE' }),
  messages: (id: string, p: { limit?: number; before?: string }) => {
    const qs = new URLSearchParams();
    if (p.limit) qs.set('limit', String(p.limit));
    if (p.before) qs.set('before', p.before);
    return api<MessagePage>(`/api/chats/${enc(id)}/messages?${qs}`).then((r) => ({
      messages: r.messages ?? [],
      next_cursor: r.next_cursor ?? '',
    }));
  },
  send: (id: string, content: string, clientMessageId: string) =>
    api<{ user_message: Message; assistant_message: Message }>(`/api/chats/${enc(id)}/messages`, {
      method: 'POST',
      body: { content, client_message_id: clientMessageId },
    }),
  regenerate: (id: string) =>
    api<{ assistant_message: Message }>(`/api/chats/${enc(id)}/regenerate`, { method: 'POST' }).then((r) => r.assistant_message),
  exportUrl: (id: string, format: 'markdown' | 'json') => `/api/chats/${enc(id)}/export?format=${format}`,
};

export const messages = {
  cancel: (id: string) => api<{ message: Message }>(`/api/messages/${enc(id)}/cancel`, { method: 'POST' }).then((r) => r.message),
  streamUrl: (id: string) => `/api/messages/${enc(id)}/stream`,
};
