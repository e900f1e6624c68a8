import { useEffect, useRef, useState, type FormEvent } from 'react';
import { NavLink, useMatch, useNavigate } from 'react-router';
import { describeError } from '../api/client';
import type { Chat } from '../api/types';
import { useChatList } from '../state/app';
import { useStartChat } from '../state/useStartChat';
import { useDebounced } from '../lib/hooks';
import { ConfirmDialog } from './ConfirmDialog';

export const chatTitle = (c: Pick<Chat, 'title'>) => c.title.trim() || 'Untitled chat';

function RenameForm({ chat, onDone }: { chat: Chat; onDone: () => void }) {
  const [, list] = useChatList();
  const [title, setTitle] = useState(chat.title);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    input.current?.focus();
    input.current?.select();
  }, []);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = title.trim();
    if (!t || t === chat.title) return onDone();
    setBusy(true);
    try {
      await list.rename(chat.id, t);
      onDone();
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  };
  return (
    <form className="rename-form" onSubmit={submit} onKeyDown={(e) => e.key === 'Escape' && (e.stopPropagation(), onDone())}>
      <input ref={input} aria-label="Chat title" value={title} maxLength={200} onChange={(e) => setTitle(e.target.value)} disabled={busy} />
      <button type="submit" className="btn btn-small" disabled={busy}>
        Save
      </button>
      <button type="button" className="btn btn-small" onClick={onDone}>
        Cancel
      </button>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

export function Sidebar({ onNavigate }: { onNavigate?: () => void }) {
  const [state, list] = useChatList();
  const { start, busy, error: startError } = useStartChat();
  const [q, setQ] = useState(state.query);
  const debounced = useDebounced(q.trim(), 300);
  const [renaming, setRenaming] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<Chat | null>(null);
  const [deleteError, setDeleteError] = useState('');
  const [deleteBusy, setDeleteBusy] = useState(false);
  const navigate = useNavigate();
  const open = useMatch('/chats/:chatId');
  const openId = open?.params.chatId;
  const sentinel = useRef<HTMLLIElement>(null);

  useEffect(() => {
    if (!state.loaded || debounced !== state.query) void list.search(debounced);
  }, [debounced]);

  // Load the next page when the end of the list scrolls into view.
  useEffect(() => {
    const el = sentinel.current;
    if (!el || !state.cursor || typeof IntersectionObserver === 'undefined') return;
    const io = new IntersectionObserver((es) => es.some((e) => e.isIntersecting) && void list.loadMore());
    io.observe(el);
    return () => io.disconnect();
  }, [state.cursor, list]);

  const confirmDelete = async () => {
    if (!deleting) return;
    setDeleteBusy(true);
    setDeleteError('');
    try {
      await list.remove(deleting.id);
      if (deleting.id === openId) navigate('/', { replace: true });
      setDeleting(null);
    } catch (e) {
      setDeleteError(describeError(e));
    } finally {
      setDeleteBusy(false);
    }
  };

  return (
    <nav className="sidebar-inner" aria-label="Chat history">
      <button type="button" className="btn btn-primary btn-block" onClick={() => void start().then(() => onNavigate?.())} disabled={busy}>
        New chat
      </button>
      {startError && (
        <p className="error" role="alert">
          {startError}
        </p>
      )}
      <div className="search">
        <input type="search" aria-label="Search chats" placeholder="Search chats" value={q} onChange={(e) => setQ(e.target.value)} />
      </div>
      <p className="sr-only" role="status" aria-live="polite">
        {state.loaded && !state.loading ? (state.query ? `${state.chats.length}${state.cursor ? '+' : ''} chats found` : '') : ''}
      </p>
      {state.error && (
        <p className="error" role="alert">
          {state.error}{' '}
          <button type="button" className="link-btn" onClick={() => void list.refresh()}>
            Try again
          </button>
        </p>
      )}
      <ul className="chat-list" aria-label={state.query ? 'Search results' : 'Chats'} aria-busy={state.loading}>
        {state.chats.map((c) => (
          <li key={c.id} className={c.id === openId ? 'active' : undefined}>
            {renaming === c.id ? (
              <RenameForm chat={c} onDone={() => setRenaming(null)} />
            ) : (
              <>
                <NavLink to={`/chats/${encodeURIComponent(c.id)}`} className="chat-link" onClick={onNavigate} title={chatTitle(c)}>
                  {chatTitle(c)}
                </NavLink>
                <span className="chat-actions">
                  <button type="button" className="icon-btn" aria-label={`Rename chat ${chatTitle(c)}`} title="Rename" onClick={() => setRenaming(c.id)}>
                    <svg aria-hidden="true" viewBox="0 0 16 16" width="14" height="14">
                      <path d="M11.5 1.5l3 3L5 14H2v-3z" fill="none" stroke="currentColor" strokeWidth="1.5" strokeLinejoin="round" />
                    </svg>
                  </button>
                  <button
                    type="button"
                    className="icon-btn"
                    aria-label={`Delete chat ${chatTitle(c)}`}
                    title="Delete"
                    onClick={() => {
                      setDeleteError('');
                      setDeleting(c);
                    }}
                  >
                    <svg aria-hidden="true" viewBox="0 0 16 16" width="14" height="14">
                      <path d="M2.5 4h11M6 4V2.5h4V4M4 4l.8 10h6.4L12 4" fill="none" stroke="currentColor" strokeWidth="1.5" strokeLinejoin="round" />
                    </svg>
                  </button>
                </span>
              </>
            )}
          </li>
        ))}
        {state.cursor && (
          <li ref={sentinel} className="load-more">
            <button type="button" className="link-btn" onClick={() => void list.loadMore()} disabled={state.loading}>
              {state.loading ? 'Loading…' : 'Load more chats'}
            </button>
          </li>
        )}
      </ul>
      {state.loaded && !state.loading && state.chats.length === 0 && !state.error && (
        <p className="muted empty">{state.query ? 'No chats match your search.' : 'No chats yet.'}</p>
      )}
      {deleting && (
        <ConfirmDialog
          title="Delete chat?"
          confirmLabel="Delete"
          onConfirm={() => void confirmDelete()}
          onCancel={() => setDeleting(null)}
          busy={deleteBusy}
          error={deleteError}
        >
          <p>
            “{chatTitle(deleting)}” and all its messages will be deleted. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </nav>
  );
}
