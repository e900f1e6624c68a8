import { useRef, useState } from 'react';
import { useNavigate } from 'react-router';
import { ApiError, describeError } from '../api/client';
import { chats } from '../api/endpoints';
import { ModelPicker } from '../components/ModelPicker';
import { useApp } from '../state/app';
import { useAuth } from '../state/auth';
import { useStartChat } from '../state/useStartChat';
import { useDocumentTitle } from '../lib/hooks';

export function HomePage() {
  useDocumentTitle('Home');
  const { user } = useAuth();
  const { models, modelsError, newChatModel, setNewChatModel } = useApp();
  const { start, busy, error } = useStartChat();
  const navigate = useNavigate();
  const [noChats, setNoChats] = useState(false);
  const [continuing, setContinuing] = useState(false);
  const [continueError, setContinueError] = useState('');
  const startRef = useRef<HTMLButtonElement>(null);

  const continueLast = async () => {
    setContinuing(true);
    setContinueError('');
    setNoChats(false);
    try {
      const chat = await chats.latest();
      navigate(`/chats/${encodeURIComponent(chat.id)}`);
    } catch (e) {
      if (e instanceof ApiError && (e.code === 'no_chats' || e.status === 404)) {
        setNoChats(true);
        startRef.current?.focus();
      } else setContinueError(describeError(e));
    } finally {
      setContinuing(false);
    }
  };

  return (
    <div className="home">
      <h1>Hello{user?.firstname ? `, ${user.firstname}` : ''}</h1>
      <p className="muted">Start a new conversation or pick up where you left off.</p>
      {noChats && (
        <div className="notice" role="alert">
          <p>
            <strong>You have no chats yet.</strong> Start a new chat to begin — pick a model if you like.
          </p>
        </div>
      )}
      <div className="home-actions">
        <ModelPicker models={models} value={newChatModel} onChange={setNewChatModel} />
        {modelsError && <p className="error">{modelsError}</p>}
        <div className="home-buttons">
          <button ref={startRef} type="button" className={`btn btn-primary btn-large${noChats ? ' pulse' : ''}`} onClick={() => void start()} disabled={busy}>
            Start new chat
          </button>
          <button type="button" className="btn btn-large" onClick={() => void continueLast()} disabled={continuing}>
            Continue last chat
          </button>
        </div>
        {(error || continueError) && (
          <p className="error" role="alert">
            {error || continueError}
          </p>
        )}
      </div>
    </div>
  );
}

export function NotFoundPage() {
  useDocumentTitle('Not found');
  const navigate = useNavigate();
  return (
    <div className="home">
      <h1>Page not found</h1>
      <p className="muted">There is nothing at this address.</p>
      <button type="button" className="btn" onClick={() => navigate('/')}>
        Go home
      </button>
    </div>
  );
}
