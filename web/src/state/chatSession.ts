// The state of one open chat: its messages (newest page first, older pages on demand),
// the answers being streamed, sending with idempotent retry, stop, regenerate, and the
// chat's live events from other tabs or devices.
import { ApiError, NetworkError, describeError } from '../api/client';
import { chats as chatApi, messages as msgApi } from '../api/endpoints';
import type { Chat, Message } from '../api/types';
import { isRunning } from '../api/types';
import { applyEvent, startLive, type Live, type Waiting } from '../sse/generation';
import { openStream, type StreamHandle } from '../sse/stream';
import type { SSEEvent } from '../sse/parser';
import { Store, nextFrame, uuid } from '../lib/store';
import { MESSAGE_PAGE, takePrefetched } from './chatPrefetch';

export { MESSAGE_PAGE };

export interface OutboxItem {
  localId: string;
  clientId: string;
  content: string;
  state: 'sending' | 'failed';
  error?: string;
}

export interface ChatState {
  status: 'loading' | 'ready' | 'not_found' | 'error';
  loadError?: string;
  chat: Chat | null;
  messages: Message[];
  olderCursor: string;
  loadingOlder: boolean;
  olderError?: string;
  outbox: OutboxItem[];
  waiting: Record<string, Waiting>;
  reconnecting: Record<string, boolean>;
  streamErrors: Record<string, string>;
  /** The last action's failure, shown above the composer. */
  notice?: string;
  busy: boolean;
}

export interface ChatSessionDeps {
  /** Told whenever the chat itself changes (title, model, activity) or is gone. */
  onChatChanged?: (chat: Chat) => void;
  api?: typeof chatApi;
  msgApi?: typeof msgApi;
  open?: typeof openStream;
}

const initial: ChatState = {
  status: 'loading',
  chat: null,
  messages: [],
  olderCursor: '',
  loadingOlder: false,
  outbox: [],
  waiting: {},
  reconnecting: {},
  streamErrors: {},
  busy: false,
};

function without<T>(r: Record<string, T>, k: string): Record<string, T> {
  if (!(k in r)) return r;
  const c = { ...r };
  delete c[k];
  return c;
}

export class ChatSession extends Store<ChatState> {
  readonly chatId: string;
  private deps: Required<Omit<ChatSessionDeps, 'onChatChanged'>> & Pick<ChatSessionDeps, 'onChatChanged'>;
  private streams = new Map<string, StreamHandle>();
  private lives = new Map<string, Live>();
  private dirty = new Set<string>();
  private flushScheduled = false;
  private events?: StreamHandle;
  private disposed = false;
  private gen = 0;

  constructor(chatId: string, deps: ChatSessionDeps = {}) {
    super(initial);
    this.chatId = chatId;
    this.deps = { api: chatApi, msgApi, open: openStream, ...deps };
  }

  /** Loads the chat and its newest messages, and opens the streams. Can follow dispose(). */
  async load(): Promise<void> {
    const g = ++this.gen;
    this.disposed = false;
    try {
      // Opened by its address: the chat and its newest page may already be on their way.
      const pre = takePrefetched(this.chatId);
      const getChat = () => this.deps.api.get(this.chatId);
      const getPage = () => this.deps.api.messages(this.chatId, { limit: MESSAGE_PAGE });
      const [chat, page] = await Promise.all([pre ? pre.chat.catch(getChat) : getChat(), pre ? pre.page.catch(getPage) : getPage()]);
      if (g !== this.gen || this.disposed) return;
      this.set({ status: 'ready', chat, messages: page.messages, olderCursor: page.next_cursor });
      page.messages.forEach((m) => this.watch(m));
      this.openEvents();
    } catch (e) {
      if (g !== this.gen || this.disposed) return;
      if (e instanceof ApiError && e.status === 404) this.set({ status: 'not_found' });
      else this.set({ status: 'error', loadError: describeError(e) });
    }
  }

  dispose(): void {
    this.disposed = true;
    this.gen++;
    this.events?.close();
    this.events = undefined;
    for (const s of this.streams.values()) s.close();
    this.streams.clear();
    this.lives.clear();
  }

  get runningAnswer(): Message | undefined {
    return this.state.messages.find((m) => m.role === 'assistant' && isRunning(m));
  }

  async loadOlder(): Promise<void> {
    const { olderCursor, loadingOlder } = this.state;
    if (!olderCursor || loadingOlder) return;
    this.set({ loadingOlder: true, olderError: undefined });
    try {
      const page = await this.deps.api.messages(this.chatId, { limit: MESSAGE_PAGE, before: olderCursor });
      if (this.disposed) return;
      this.set((s) => {
        const have = new Set(s.messages.map((m) => m.id));
        return {
          messages: [...page.messages.filter((m) => !have.has(m.id)), ...s.messages],
          olderCursor: page.next_cursor,
          loadingOlder: false,
        };
      });
    } catch (e) {
      this.set({ loadingOlder: false, olderError: describeError(e) });
    }
  }

  clearNotice(): void {
    if (this.state.notice) this.set({ notice: undefined });
  }

  /** Sends a message. Resolves false (and sets notice) when it was refused. */
  async send(content: string): Promise<boolean> {
    const text = content.trim();
    if (!text) return false;
    if (this.runningAnswer) {
      this.set({ notice: 'An answer is still being generated. Wait for it to finish, or press Stop.' });
      return false;
    }
    const item: OutboxItem = { localId: 'local-' + uuid(), clientId: uuid(), content: text, state: 'sending' };
    this.set((s) => ({ outbox: [...s.outbox, item], notice: undefined }));
    return this.deliver(item);
  }

  /** Retries a send that failed on the network, with the same client_message_id. */
  retrySend(localId: string): Promise<boolean> {
    const item = this.state.outbox.find((o) => o.localId === localId);
    if (!item) return Promise.resolve(false);
    const again = { ...item, state: 'sending' as const, error: undefined };
    this.set((s) => ({ outbox: s.outbox.map((o) => (o.localId === localId ? again : o)) }));
    return this.deliver(again);
  }

  discardSend(localId: string): void {
    this.set((s) => ({ outbox: s.outbox.filter((o) => o.localId !== localId) }));
  }

  private async deliver(item: OutboxItem): Promise<boolean> {
    try {
      const r = await this.deps.api.send(this.chatId, item.content, item.clientId);
      if (this.disposed) return true;
      this.set((s) => ({ outbox: s.outbox.filter((o) => o.localId !== item.localId) }));
      this.merge([r.user_message, r.assistant_message]);
      this.touchChat();
      return true;
    } catch (e) {
      if (e instanceof NetworkError) {
        this.set((s) => ({
          outbox: s.outbox.map((o) => (o.localId === item.localId ? { ...o, state: 'failed', error: describeError(e) } : o)),
        }));
        return true; // the text is kept in the failed item, with Retry
      }
      let notice = describeError(e);
      if (e instanceof ApiError && e.code === 'generation_in_progress') {
        notice = 'An answer is still being generated in this chat. Wait for it to finish, or press Stop, then send again.';
        void this.refreshNewest();
      }
      this.set((s) => ({ outbox: s.outbox.filter((o) => o.localId !== item.localId), notice }));
      return false;
    }
  }

  async stop(): Promise<void> {
    const m = this.runningAnswer;
    if (!m) return;
    try {
      const stopped = await this.deps.msgApi.cancel(m.id);
      // The stream delivers the final text; if it already ended, take the reply.
      if (stopped && !isRunning(stopped) && !this.streams.has(stopped.id)) this.merge([stopped]);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'not_running') return;
      this.set({ notice: describeError(e) });
    }
  }

  /** Replaces the last answer with a new one (also "Retry" on a failed answer). */
  async regenerate(): Promise<void> {
    if (this.state.busy) return;
    if (this.runningAnswer) {
      this.set({ notice: 'An answer is still being generated. Wait for it to finish, or press Stop.' });
      return;
    }
    this.set({ busy: true, notice: undefined });
    try {
      const a = await this.deps.api.regenerate(this.chatId);
      if (this.disposed) return;
      this.set((s) => {
        const msgs = [...s.messages];
        const lastUser = msgs.map((m) => m.role).lastIndexOf('user');
        // Answers after the last question are the ones being replaced.
        const kept = msgs.filter((m, i) => i <= lastUser || m.role !== 'assistant' || m.id === a.id);
        if (!kept.some((m) => m.id === a.id)) kept.push(a);
        return { messages: kept, busy: false, streamErrors: {} };
      });
      this.watch(a);
    } catch (e) {
      let notice = describeError(e);
      if (e instanceof ApiError && e.code === 'generation_in_progress') notice = 'An answer is already being generated.';
      this.set({ busy: false, notice });
    }
  }

  async setModel(model: string): Promise<void> {
    const chat = this.state.chat;
    if (!chat || chat.model === model) return;
    this.set({ chat: { ...chat, model }, notice: undefined });
    try {
      const updated = await this.deps.api.update(this.chatId, { model });
      this.set({ chat: updated });
      this.deps.onChatChanged?.(updated);
    } catch (e) {
      this.set({ chat, notice: describeError(e) });
    }
  }

  /** Applies a chat change from outside (rename in the sidebar, chat.updated). */
  chatChanged(chat: Chat): void {
    if (chat.id === this.chatId) this.set({ chat });
  }

  private touchChat(): void {
    const c = this.state.chat;
    if (c) this.deps.onChatChanged?.({ ...c, updated_at: new Date().toISOString() });
  }

  /** Inserts or updates messages by id, keeping order; starts streams for running answers. */
  private merge(list: Message[]): void {
    this.set((s) => {
      const msgs = [...s.messages];
      for (const m of list) {
        if (this.streams.has(m.id) && isRunning(m)) continue; // the stream is fresher
        const i = msgs.findIndex((x) => x.id === m.id);
        if (i >= 0) msgs[i] = m;
        else msgs.push(m);
      }
      return { messages: msgs };
    });
    list.forEach((m) => this.watch(m));
  }

  /**
   * Takes the server's newest page as the truth for the span it covers (a regenerated
   * answer replaced the old one, another tab added messages), keeping older pages and the
   * fresher text of answers being streamed here.
   */
  private replaceTail(page: Message[]): void {
    if (page.length === 0) return;
    this.set((s) => {
      const start = s.messages.findIndex((m) => m.id === page[0].id);
      const older = start >= 0 ? s.messages.slice(0, start) : s.messages.filter((m) => !page.some((p) => p.id === m.id));
      const local = new Map(s.messages.map((m) => [m.id, m]));
      const tail = page.map((m) => (this.streams.has(m.id) && isRunning(m) ? (local.get(m.id) ?? m) : m));
      return { messages: [...older, ...tail] };
    });
    page.forEach((m) => this.watch(m));
  }

  /** Re-reads the newest page (after a message from another tab, or a 409). */
  private async refreshNewest(): Promise<void> {
    try {
      const page = await this.deps.api.messages(this.chatId, { limit: MESSAGE_PAGE });
      if (this.disposed) return;
      this.replaceTail(page.messages);
    } catch {
      /* the next event will try again */
    }
  }

  /** Opens the stream of a running answer (once per message). */
  private watch(m: Message): void {
    if (this.disposed || m.role !== 'assistant' || !isRunning(m) || this.streams.has(m.id)) return;
    this.lives.set(m.id, startLive(m));
    const handle = this.deps.open(this.deps.msgApi.streamUrl(m.id), {
      onEvent: (ev) => this.onGeneration(m.id, ev),
      onOpen: () => this.set((s) => ({ reconnecting: without(s.reconnecting, m.id) })),
      onDisconnect: (attempt) => {
        if (attempt >= 2) this.set((s) => ({ reconnecting: { ...s.reconnecting, [m.id]: true } }));
      },
      onFatal: (err) => {
        this.streams.delete(m.id);
        this.lives.delete(m.id);
        if (err.status === 401) return; // the app is sending the person to sign in
        this.set((s) => ({ streamErrors: { ...s.streamErrors, [m.id]: err.message }, reconnecting: without(s.reconnecting, m.id) }));
      },
    });
    this.streams.set(m.id, handle);
  }

  private onGeneration(id: string, ev: SSEEvent): boolean {
    const live = this.lives.get(id);
    if (!live) return true;
    const next = applyEvent(live, ev);
    if (next === live) return false;
    this.lives.set(id, next);
    this.dirty.add(id);
    if (next.finished) {
      this.flush();
      this.streams.delete(id);
      this.lives.delete(id);
      void this.refreshChat();
      return true;
    }
    this.scheduleFlush();
    return false;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Re-rendering Markdown costs more as an answer grows: long answers update a few
    // times a second instead of every frame, so typing and scrolling stay smooth.
    let longest = 0;
    for (const id of this.dirty) longest = Math.max(longest, this.lives.get(id)?.message.content.length ?? 0);
    const delay = longest > 20_000 ? 250 : longest > 5_000 ? 100 : 0;
    if (delay) setTimeout(() => nextFrame(() => this.flush()), delay);
    else nextFrame(() => this.flush());
  }

  /** Moves the buffered stream state into the rendered state, at most once per frame. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.dirty.size === 0 || this.disposed) return;
    const ids = [...this.dirty];
    this.dirty.clear();
    this.set((s) => {
      let waiting = s.waiting;
      const byId = new Map<string, Live>();
      for (const id of ids) {
        const l = this.lives.get(id);
        if (!l) continue;
        byId.set(id, l);
        waiting = l.waiting ? { ...waiting, [id]: l.waiting } : without(waiting, id);
      }
      return { messages: s.messages.map((m) => byId.get(m.id)?.message ?? m), waiting };
    });
  }

  private async refreshChat(): Promise<void> {
    try {
      const chat = await this.deps.api.get(this.chatId);
      if (this.disposed) return;
      this.set({ chat });
      this.deps.onChatChanged?.(chat);
    } catch {
      /* not important */
    }
  }

  private openEvents(): void {
    this.events?.close();
    this.events = this.deps.open(`/api/chats/${encodeURIComponent(this.chatId)}/events`, {
      onEvent: (ev) => {
        let d: Record<string, unknown>;
        try {
          d = JSON.parse(ev.data);
        } catch {
          return;
        }
        // Accept either the payload or the whole event envelope.
        if (d && typeof d === 'object' && 'data' in d && 'type' in d && typeof d.data === 'object') d = d.data as Record<string, unknown>;
        switch (ev.event) {
          case 'message.created': {
            const aid = typeof d.assistant_message_id === 'string' ? d.assistant_message_id : '';
            // Our own send in flight brings its messages with its reply.
            if (this.state.outbox.some((o) => o.state === 'sending') || this.state.busy) break;
            if (!aid || !this.state.messages.some((m) => m.id === aid)) void this.refreshNewest();
            break;
          }
          case 'message.completed':
            if (d.message && typeof d.message === 'object') {
              const m = d.message as Message;
              if (!this.streams.has(m.id) && this.state.messages.some((x) => x.id === m.id)) this.merge([m]);
              else if (!this.state.messages.some((x) => x.id === m.id)) void this.refreshNewest();
            }
            break;
          case 'chat.updated':
            if (d.chat && typeof d.chat === 'object') {
              const chat = d.chat as Chat;
              if (chat.id === this.chatId) {
                this.set({ chat });
                this.deps.onChatChanged?.(chat);
              }
            }
            break;
        }
      },
      onFatal: () => {
        /* no live events (e.g. an older gateway): the chat still works */
      },
    });
  }
}
