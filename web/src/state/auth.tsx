// Who is signed in. The session itself is the HttpOnly cookie (never visible to
// scripts); this only keeps the user's profile, learnt from /api/auth/me or login.
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { useLocation, useNavigate } from 'react-router';
import { ApiError, describeError, setUnauthenticatedHandler } from '../api/client';
import { auth } from '../api/endpoints';
import type { User } from '../api/types';

type Status = 'loading' | 'in' | 'out';

interface AuthValue {
  status: Status;
  user: User | null;
  /** Set when the session ended on its own (shown on the sign-in page). */
  expired: boolean;
  login(username: string, password: string): Promise<User>;
  signup(b: { username: string; email: string; password: string; firstname: string; lastname: string }): Promise<User>;
  logout(): Promise<void>;
  /** Ends every session of the account; resolves to a problem when it could not. */
  logoutAll(): Promise<string | void>;
}

const Ctx = createContext<AuthValue | null>(null);

/** Where to go after signing in: only same-site paths, never "//host" or a URL. */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  if (next.startsWith('/login') || next.startsWith('/signup')) return '/';
  return next;
}

export function loginPath(next: string): string {
  return next && next !== '/' ? `/login?next=${encodeURIComponent(next)}` : '/login';
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [status, setStatus] = useState<Status>('loading');
  const [user, setUser] = useState<User | null>(null);
  const [expired, setExpired] = useState(false);
  const navigate = useNavigate();
  const location = useLocation();
  const locRef = useRef(location);
  locRef.current = location;
  const statusRef = useRef(status);
  statusRef.current = status;

  useEffect(() => {
    let gone = false;
    auth
      .me()
      .then((u) => {
        if (gone) return;
        setUser(u);
        setStatus('in');
      })
      .catch((e) => {
        if (gone) return;
        setUser(null);
        // 401: not signed in. Anything else (gateway down) also lands on sign-in,
        // whose form reports the real problem when used.
        if (!(e instanceof ApiError) || e.status !== 401) console.warn('session check failed', e);
        setStatus('out');
      });
    return () => {
      gone = true;
    };
  }, []);

  useEffect(() => {
    setUnauthenticatedHandler(() => {
      if (statusRef.current !== 'in') return;
      const l = locRef.current;
      setUser(null);
      setStatus('out');
      setExpired(true);
      navigate(loginPath(l.pathname + l.search + l.hash), { replace: true });
    });
    return () => setUnauthenticatedHandler(() => {});
  }, [navigate]);

  const login = useCallback(async (username: string, password: string) => {
    const u = await auth.login(username, password);
    setUser(u);
    setExpired(false);
    setStatus('in');
    return u;
  }, []);

  const signup = useCallback(
    async (b: { username: string; email: string; password: string; firstname: string; lastname: string }) => auth.signup(b),
    [],
  );

  const logout = useCallback(async () => {
    try {
      await auth.logout();
    } catch {
      /* the session may already be gone; sign out locally all the same */
    }
    setUser(null);
    setExpired(false);
    setStatus('out');
    navigate('/login', { replace: true });
  }, [navigate]);

  const logoutAll = useCallback(async () => {
    try {
      await auth.logoutAll();
    } catch (e) {
      // 401: this session had already ended, so there is nothing left here to end; any
      // other failure leaves the other sessions running: say so, stay signed in.
      if (!(e instanceof ApiError) || e.status !== 401) return `Could not log out everywhere: ${describeError(e)}`;
    }
    setUser(null);
    setExpired(false);
    setStatus('out');
    navigate('/login', { replace: true });
  }, [navigate]);

  const value = useMemo(
    () => ({ status, user, expired, login, signup, logout, logoutAll }),
    [status, user, expired, login, signup, logout, logoutAll],
  );
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useAuth(): AuthValue {
  const v = useContext(Ctx);
  if (!v) throw new Error('useAuth outside AuthProvider');
  return v;
}
