import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router';
import { App, loadChatPage } from './App';
import { prefetchChat } from './state/chatPrefetch';
import './styles.css';

// A chat opened by its address: fetch its code and its data while the session is checked.
if (location.pathname.startsWith('/chats/')) {
  void loadChatPage();
  prefetchChat(location.pathname);
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <BrowserRouter>
      <App />
    </BrowserRouter>
  </StrictMode>,
);
