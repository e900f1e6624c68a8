import { lazy, Suspense } from 'react';
import { Route, Routes } from 'react-router';
import { AuthProvider } from './state/auth';
import { AppLayout, PublicOnly, Splash } from './pages/Layout';
import { LoginPage, SignupPage } from './pages/AuthPages';
import { HomePage, NotFoundPage } from './pages/HomePage';

// The chat view brings the Markdown renderer and highlighter: load it on demand (and
// prefetch it once signed in, see AppLayout), so sign-in stays light.
export const loadChatPage = () => import('./pages/ChatPage');
const ChatPage = lazy(() => loadChatPage().then((m) => ({ default: m.ChatPage })));

export function App() {
  return (
    <AuthProvider>
      <Routes>
        <Route
          path="/login"
          element={
            <PublicOnly>
              <LoginPage />
            </PublicOnly>
          }
        />
        <Route
          path="/signup"
          element={
            <PublicOnly>
              <SignupPage />
            </PublicOnly>
          }
        />
        <Route element={<AppLayout />}>
          <Route index element={<HomePage />} />
          <Route
            path="chats/:chatId"
            element={
              <Suspense fallback={<Splash />}>
                <ChatPage />
              </Suspense>
            }
          />
          <Route path="*" element={<NotFoundPage />} />
        </Route>
      </Routes>
    </AuthProvider>
  );
}
