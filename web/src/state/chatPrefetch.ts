// Opening a chat by its address (a reload, a link, a bookmark) asks for the chat and its
// newest page at once, while the app still checks the session and loads the chat view's
// code, instead of after both. The chat view's first load takes the answers.
import { api } from '../api/client';
import type { Chat, MessagePage } from '../api/types';

interface Prefetched {
  id: string;
  at: number;
  chat: Promise<Chat>;
  page: Promise<{ messages: MessagePage['messages']; next_cursor: string }>;
}

/** Messages per page of a chat (the newest page first, older ones on scrolling up). */
export const MESSAGE_PAGE = 50;

let pending: Prefetched | undefined;

/** Starts fetching the chat named by a /chats/{id} path (nothing for other paths). */
export function prefetchChat(path: string, limit = MESSAGE_PAGE): void {
  const m = /^\/chats\/([^/?#]+)\/?$/.exec(path);
  if (!m) return;
  const id = decodeURIComponent(m[1]);
  const enc = encodeURIComponent(id);
  // No sign-in redirect from here: if the session is gone, the app finds out on its own.
  const chat = api<{ chat: Chat }>(`/api/chats/${enc}`, { noAuthRedirect: true }).then((r) => r.chat);
  const page = api<MessagePage>(`/api/chats/${enc}/messages?limit=${limit}`, { noAuthRedirect: true }).then((r) => ({
    messages: r.messages ?? [],
    next_cursor: r.next_cursor ?? '',
  }));
  // Failures are handled by whoever takes them (or the fetch is made again).
  chat.catch(() => {});
  page.catch(() => {});
  pending = { id, at: Date.now(), chat, page };
}

/** The prefetched chat and page for id, once, if fetched in the last 10 s. */
export function takePrefetched(id: string): Prefetched | undefined {
  const p = pending;
  if (!p || p.id !== id) return undefined;
  pending = undefined;
  return Date.now() - p.at < 10_000 ? p : undefined;
}
