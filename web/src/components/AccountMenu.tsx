import { useState } from 'react';
import { useDismiss } from '../lib/hooks';
import type { User } from '../api/types';

/**
 * The account menu in the top bar: who is signed in, "Log out" (this browser) and "Log out
 * everywhere" (every session of the account, on every device). Closes on Escape or a
 * click elsewhere.
 */
export function AccountMenu({ user, onLogout, onLogoutAll }: { user: User; onLogout: () => Promise<void>; onLogoutAll: () => Promise<string | void> }) {
  const ref = useDismiss();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const name = user.firstname || user.username;
  const run = async (fn: () => Promise<string | void>) => {
    setBusy(true);
    setError('');
    const problem = await fn();
    // Still here: the request failed and the person stays signed in.
    if (problem) {
      setError(problem);
      setBusy(false);
    }
  };
  return (
    <details className="menu account-menu" ref={ref}>
      <summary className="btn btn-small" aria-label={`Account: ${name}`} title={user.email}>
        <span className="who">{name}</span> <span aria-hidden="true">▾</span>
      </summary>
      <div className="menu-pop">
        <p className="muted small account-who">
          Signed in as <strong>{user.username}</strong>
        </p>
        <button type="button" className="menu-item" disabled={busy} onClick={() => void run(onLogout)}>
          Log out
        </button>
        <button type="button" className="menu-item" disabled={busy} onClick={() => void run(onLogoutAll)} aria-describedby="logout-all-hint">
          Log out everywhere
        </button>
        <p id="logout-all-hint" className="muted small account-hint">
          Ends every session of your account, on all devices and browsers.
        </p>
        {error && (
          <p className="error small" role="alert">
            {error}
          </p>
        )}
      </div>
    </details>
  );
}
