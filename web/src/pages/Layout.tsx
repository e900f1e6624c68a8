import { useEffect, useRef, useState } from 'react';
import { Link, Navigate, Outlet, useLocation } from 'react-router';
import { AccountMenu } from '../components/AccountMenu';
import { Sidebar } from '../components/Sidebar';
import { AppProvider } from '../state/app';
import { loginPath, safeNext, useAuth } from '../state/auth';

export function Splash() {
  return (
    <div className="splash" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading…
    </div>
  );
}

/** Signed-in screens: header, chat history sidebar (a drawer on phones) and the page. */
export function AppLayout() {
  const { status, user, logout, logoutAll } = useAuth();
  const location = useLocation();
  const [drawer, setDrawer] = useState(false);
  const menuBtn = useRef<HTMLButtonElement>(null);
  const sidebar = useRef<HTMLElement>(null);

  useEffect(() => setDrawer(false), [location.pathname]);
  // Fetch the chat view's code early, while the person looks at the home screen.
  useEffect(() => {
    if (status === 'in') void import('./ChatPage');
  }, [status]);
  useEffect(() => {
    if (!drawer) return;
    // Phone drawer: move focus into it, and back to its button when Escape closes it.
    sidebar.current?.querySelector<HTMLElement>('input, button')?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || document.querySelector('[role="alertdialog"]')) return;
      setDrawer(false);
      menuBtn.current?.focus();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [drawer]);

  if (status === 'loading') return <Splash />;
  if (status === 'out') return <Navigate to={loginPath(location.pathname + location.search + location.hash)} replace />;

  return (
    <AppProvider>
      <div className={`app${drawer ? ' drawer-open' : ''}`}>
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <header className="topbar">
          <button
            ref={menuBtn}
            type="button"
            className="icon-btn menu-btn"
            aria-label="Chat history"
            aria-expanded={drawer}
            aria-controls="sidebar"
            onClick={() => setDrawer((d) => !d)}
          >
            <svg aria-hidden="true" viewBox="0 0 20 20" width="20" height="20">
              <path d="M3 5h14M3 10h14M3 15h14" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" />
            </svg>
          </button>
          <Link to="/" className="brand">
            Parley
          </Link>
          <span className="spacer" />
          {user && <AccountMenu user={user} onLogout={logout} onLogoutAll={logoutAll} />}
        </header>
        <aside id="sidebar" className="sidebar" ref={sidebar}>
          <Sidebar onNavigate={() => setDrawer(false)} />
        </aside>
        {drawer && <div className="drawer-backdrop" onClick={() => setDrawer(false)} aria-hidden="true" />}
        <main id="main" className="main" tabIndex={-1}>
          <Outlet />
        </main>
      </div>
    </AppProvider>
  );
}

/** Sign-in and sign-up: a signed-in person goes straight on. */
export function PublicOnly({ children }: { children: React.ReactNode }) {
  const { status } = useAuth();
  const location = useLocation();
  if (status === 'loading') return <Splash />;
  if (status === 'in') {
    return <Navigate to={safeNext(new URLSearchParams(location.search).get('next'))} replace />;
  }
  return <>{children}</>;
}
