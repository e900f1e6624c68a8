// The sidebar's chat history: newest activity first, paginated with a cursor, searchable.
import { describeError } from '../api/client';
import { chats as chatApi } from '../api/endpoints';
import type { Chat } from '../api/types';
import { Store } from '../lib/store';

export const CHAT_PAGE = 30;

export interface ChatListState {
  chats: Chat[];
  cursor: string;
  query: string;
  loading: boolean;
  loaded: boolean;
  error?: string;
}

const byActivity = (a: Chat, b: Chat) => (a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : 0);

export class ChatList extends Store<ChatListState> {
  private api: typeof chatApi;
  private ctrl?: AbortController;
  /**
   * Chats deleted in this tab. A list page requested before a delete committed, or a
   * chat.updated event that was on its way, may still name one: it must not come back.
   */
  private deleted = new Set<string>();

  constructor(api: typeof chatApi = chatApi) {
    super({ chats: [], cursor: '', query: '', loading: false, loaded: false });
    this.api = api;
  }

  /** Loads the first page for a query (cancelling any load in flight). */
  async search(query: string): Promise<void> {
    this.ctrl?.abort();
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.set({ query, loading: true, error: undefined });
    try {
      const page = await this.api.list({ limit: CHAT_PAGE, q: query || undefined }, ctrl.signal);
      if (ctrl.signal.aborted) return;
      this.set({ chats: this.live(page.chats), cursor: page.next_cursor, loading: false, loaded: true });
    } catch (e) {
      if (ctrl.signal.aborted) return;
      this.set({ loading: false, loaded: true, error: describeError(e) });
    }
  }

  refresh(): Promise<void> {
    return this.search(this.state.query);
  }

  async loadMore(): Promise<void> {
    const { cursor, loading, query } = this.state;
    if (!cursor || loading) return;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.set({ loading: true, error: undefined });
    try {
      const page = await this.api.list({ limit: CHAT_PAGE, cursor, q: query || undefined }, ctrl.signal);
      if (ctrl.signal.aborted) return;
      this.set((s) => {
        const have = new Set(s.chats.map((c) => c.id));
        const more = this.live(page.chats).filter((c) => !have.has(c.id));
        return { chats: [...s.chats, ...more], cursor: page.next_cursor, loading: false };
      });
    } catch (e) {
      if (ctrl.signal.aborted) return;
      this.set({ loading: false, error: describeError(e) });
    }
  }

  /** A chat was created or changed: update it in place or put it at the top. */
  upsert(chat: Chat): void {
    if (this.deleted.has(chat.id)) return;
    this.set((s) => {
      const i = s.chats.findIndex((c) => c.id === chat.id);
      if (i < 0) {
        // While searching, a new chat only shows up if the search finds it.
        if (s.query) return {};
        return { chats: [chat, ...s.chats] };
      }
      const next = [...s.chats];
      next[i] = { ...next[i], ...chat };
      return { chats: next.sort(byActivity) };
    });
  }

  removeLocal(id: string): void {
    this.deleted.add(id);
    this.set((s) => ({ chats: s.chats.filter((c) => c.id !== id) }));
  }

  private live(chats: Chat[]): Chat[] {
    return this.deleted.size ? chats.filter((c) => !this.deleted.has(c.id)) : chats;
  }

  async rename(id: string, title: string): Promise<Chat> {
    const chat = await this.api.update(id, { title });
    this.set((s) => ({ chats: s.chats.map((c) => (c.id === id ? chat : c)) }));
    return chat;
  }

  async remove(id: string): Promise<void> {
    await this.api.remove(id);
    this.removeLocal(id);
  }
}
