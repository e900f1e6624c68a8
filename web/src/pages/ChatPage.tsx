import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { Link, useParams } from 'react-router';
import { isRunning } from '../api/types';
import { Composer, type ComposerHandle } from '../components/Composer';
import { ExportMenu } from '../components/ExportMenu';
import { MessageList } from '../components/MessageList';
import { ModelPicker } from '../components/ModelPicker';
import { chatTitle } from '../components/Sidebar';
import { useApp } from '../state/app';
import { ChatSession } from '../state/chatSession';
import { useDocumentTitle } from '../lib/hooks';
import { Splash } from './Layout';

export function ChatPage() {
  const { chatId = '' } = useParams();
  return <ChatView key={chatId} chatId={chatId} />;
}

function ChatView({ chatId }: { chatId: string }) {
  const { chatList, models } = useApp();
  const [session] = useState(() => new ChatSession(chatId, { onChatChanged: (c) => chatList.upsert(c) }));
  const s = useSyncExternalStore(session.subscribe, session.getState);
  const composer = useRef<ComposerHandle>(null);
  const [followToken, setFollowToken] = useState(0);
  useDocumentTitle(s.chat ? chatTitle(s.chat) : 'Chat');

  useEffect(() => {
    void session.load();
    return () => session.dispose();
  }, [session]);

  // Keep the open chat in step with renames made in the sidebar.
  useEffect(
    () =>
      chatList.subscribe(() => {
        const c = chatList.getState().chats.find((x) => x.id === chatId);
        const cur = session.getState().chat;
        if (c && cur && (c.title !== cur.title || c.model !== cur.model)) session.chatChanged({ ...cur, title: c.title, model: c.model });
      }),
    [chatList, chatId, session],
  );

  useEffect(() => {
    if (s.status === 'ready' && window.matchMedia?.('(pointer: fine)').matches) composer.current?.focus();
  }, [s.status]);

  const running = s.messages.some((m) => m.role === 'assistant' && isRunning(m));
  const onSend = useCallback(
    async (text: string) => {
      setFollowToken((t) => t + 1);
      return session.send(text);
    },
    [session],
  );
  const onRegenerate = useCallback(() => {
    setFollowToken((t) => t + 1);
    void session.regenerate();
  }, [session]);
  const onLoadOlder = useCallback(() => void session.loadOlder(), [session]);
  const onRetrySend = useCallback((id: string) => void session.retrySend(id), [session]);
  const onDiscardSend = useCallback((id: string) => session.discardSend(id), [session]);

  if (s.status === 'loading') return <Splash />;
  if (s.status === 'not_found')
    return (
      <div className="home">
        <h1>Chat not found</h1>
        <p className="muted">It may have been deleted.</p>
        <Link to="/" className="btn">
          Go home
        </Link>
      </div>
    );
  if (s.status === 'error' || !s.chat)
    return (
      <div className="home">
        <h1>Could not open this chat</h1>
        <p className="error" role="alert">
          {s.loadError}
        </p>
        <button type="button" className="btn" onClick={() => void session.load()}>
          Try again
        </button>
      </div>
    );

  const chat = s.chat;
  return (
    <div className="chat">
      <div className="chat-head">
        <h1 className="chat-title" title={chatTitle(chat)}>
          {chatTitle(chat)}
        </h1>
        <ModelPicker models={models} value={chat.model} onChange={(m) => void session.setModel(m)} disabled={running} />
        <ExportMenu chatId={chat.id} />
      </div>
      {s.messages.length === 0 && s.outbox.length === 0 && (
        <div className="empty-chat">
          <p>Ask anything to start the conversation.</p>
        </div>
      )}
      <MessageList
        messages={s.messages}
        outbox={s.outbox}
        waiting={s.waiting}
        reconnecting={s.reconnecting}
        streamErrors={s.streamErrors}
        hasOlder={!!s.olderCursor}
        loadingOlder={s.loadingOlder}
        olderError={s.olderError}
        onLoadOlder={onLoadOlder}
        onRegenerate={onRegenerate}
        onRetrySend={onRetrySend}
        onDiscardSend={onDiscardSend}
        canRegenerate={!s.busy && !running}
        followToken={followToken}
      />
      <div className="chat-foot">
        {s.notice && (
          <p className="notice" role="alert">
            {s.notice}{' '}
            <button type="button" className="link-btn" onClick={() => session.clearNotice()}>
              Dismiss
            </button>
          </p>
        )}
        <p className="sr-only" role="status" aria-live="polite">
          {running ? 'Generating an answer' : ''}
        </p>
        <Composer ref={composer} running={running} onSend={onSend} onStop={() => void session.stop()} />
      </div>
    </div>
  );
}
