// App-wide state for signed-in screens: the sidebar's chat list and the models.
import { createContext, useContext, useEffect, useMemo, useState, useSyncExternalStore, type ReactNode } from 'react';
import { models as modelsApi } from '../api/endpoints';
import type { Model } from '../api/types';
import { ChatList, type ChatListState } from './chatList';

interface AppValue {
  chatList: ChatList;
  models: Model[];
  modelsError?: string;
  /** The model picked for new chats (the default until the person picks another). */
  newChatModel: string;
  setNewChatModel(id: string): void;
}

const Ctx = createContext<AppValue | null>(null);

export function AppProvider({ children, chatList: given }: { children: ReactNode; chatList?: ChatList }) {
  const [chatList] = useState(() => given ?? new ChatList());
  const [models, setModels] = useState<Model[]>([]);
  const [modelsError, setModelsError] = useState<string>();
  const [picked, setPicked] = useState('');

  useEffect(() => {
    let gone = false;
    modelsApi
      .list()
      .then((m) => !gone && setModels(m))
      .catch(() => !gone && setModelsError('Could not load the list of models.'));
    return () => {
      gone = true;
    };
  }, []);

  const fallback = models.find((m) => m.default)?.id ?? models[0]?.id ?? '';
  const value = useMemo(
    () => ({ chatList, models, modelsError, newChatModel: picked || fallback, setNewChatModel: setPicked }),
    [chatList, models, modelsError, picked, fallback],
  );
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useApp(): AppValue {
  const v = useContext(Ctx);
  if (!v) throw new Error('useApp outside AppProvider');
  return v;
}

export function useChatList(): [ChatListState, ChatList] {
  const { chatList } = useApp();
  const s = useSyncExternalStore(chatList.subscribe, chatList.getState);
  return [s, chatList];
}
