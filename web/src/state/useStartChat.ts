import { useCallback, useState } from 'react';
import { useNavigate } from 'react-router';
import { describeError } from '../api/client';
import { chats } from '../api/endpoints';
import { useApp } from './app';

/** Creates a chat with the model picked for new chats and opens it. */
export function useStartChat() {
  const { chatList, newChatModel } = useApp();
  const navigate = useNavigate();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const start = useCallback(async () => {
    setBusy(true);
    setError('');
    try {
      const chat = await chats.create(newChatModel ? { model: newChatModel } : {});
      chatList.upsert(chat);
      navigate(`/chats/${encodeURIComponent(chat.id)}`, { state: { fresh: true } });
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  }, [chatList, newChatModel, navigate]);
  return { start, busy, error };
}
