// Shapes of the gateway's HTTP API (docs/api.md). Field names are the contract.

export interface User {
  id: string;
  username: string;
  email: string;
  firstname: string;
  lastname: string;
  created_at: string;
}

export interface Chat {
  id: string;
  title: string;
  model: string;
  created_at: string;
  updated_at: string;
}

export type MessageStatus = 'pending' | 'streaming' | 'complete' | 'cancelled' | 'failed';

export interface ApiErrorBody {
  code: string;
  message: string;
  retry_after?: number;
}

export interface Message {
  id: string;
  chat_id: string;
  role: 'user' | 'assistant';
  content: string;
  status: MessageStatus;
  model?: string;
  created_at: string;
  finished_at?: string;
  error?: ApiErrorBody;
  usage?: { prompt_tokens: number; completion_tokens: number };
}

export interface Model {
  id: string;
  name: string;
  provider: string;
  default: boolean;
}

export interface ChatPage {
  chats: Chat[];
  next_cursor: string;
}

export interface MessagePage {
  messages: Message[];
  next_cursor: string;
}

export const isRunning = (m: Pick<Message, 'status'>) => m.status === 'pending' || m.status === 'streaming';
