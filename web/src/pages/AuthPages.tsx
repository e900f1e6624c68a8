import { useId, useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { ApiError, describeError } from '../api/client';
import { useAuth, safeNext } from '../state/auth';
import { useDocumentTitle } from '../lib/hooks';

function Field(props: {
  label: string;
  name: string;
  type?: string;
  autoComplete?: string;
  hint?: string;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  value: string;
  onChange: (v: string) => void;
  autoFocus?: boolean;
}) {
  const id = useId();
  const hintId = props.hint ? id + '-hint' : undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={props.type ?? 'text'}
        autoComplete={props.autoComplete}
        required
        minLength={props.minLength}
        maxLength={props.maxLength}
        pattern={props.pattern}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-describedby={hintId}
        autoFocus={props.autoFocus}
        autoCapitalize={props.type === 'password' || props.name === 'username' || props.type === 'email' ? 'off' : undefined}
        spellCheck={props.type === 'password' || props.name === 'username' ? false : undefined}
      />
      {props.hint && (
        <p id={hintId} className="hint">
          {props.hint}
        </p>
      )}
    </div>
  );
}

function AuthCard({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <main className="auth-page">
      <div className="auth-card">
        <p className="brand brand-lg" aria-hidden="true">
          Parley
        </p>
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}

export function LoginPage() {
  useDocumentTitle('Sign in');
  const { login, expired } = useAuth();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const [username, setUsername] = useState(params.get('username') ?? '');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const next = safeNext(params.get('next'));
  const created = params.get('created') === '1';

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await login(username.trim(), password);
      navigate(next, { replace: true });
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  };

  return (
    <AuthCard title="Sign in">
      {expired && !error && (
        <p className="notice" role="status">
          Your session has ended. Sign in again to continue where you were.
        </p>
      )}
      {created && !error && (
        <p className="notice" role="status">
          Your account is ready. Log in to start chatting.
        </p>
      )}
      <form onSubmit={submit} noValidate={false}>
        <Field label="Username" name="username" autoComplete="username" hint="Your username or email" value={username} onChange={setUsername} autoFocus />
        <Field label="Password" name="password" type="password" autoComplete="current-password" value={password} onChange={setPassword} />
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button className="btn btn-primary btn-block" type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
      <p className="switch">
        New to Parley? <Link to={next !== '/' ? `/signup?next=${encodeURIComponent(next)}` : '/signup'}>Sign up</Link>
      </p>
    </AuthCard>
  );
}

export function SignupPage() {
  useDocumentTitle('Sign up');
  const { signup, login } = useAuth();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const [f, setF] = useState({ username: '', email: '', password: '', firstname: '', lastname: '' });
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const next = safeNext(params.get('next'));
  const set = (k: keyof typeof f) => (v: string) => setF((s) => ({ ...s, [k]: v }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    const body = { ...f, username: f.username.trim(), email: f.email.trim(), firstname: f.firstname.trim(), lastname: f.lastname.trim() };
    try {
      await signup(body);
    } catch (err) {
      setError(err instanceof ApiError && err.code === 'invalid_input' ? `Please check the form: ${err.message}` : describeError(err));
      setBusy(false);
      return;
    }
    // Signed up: sign straight in; if that fails, the sign-in page takes over.
    try {
      await login(body.username, body.password);
      navigate(next, { replace: true });
    } catch {
      navigate(`/login?created=1&username=${encodeURIComponent(body.username)}`, { replace: true });
    }
  };

  return (
    <AuthCard title="Create your account">
      <form onSubmit={submit}>
        <div className="field-row">
          <Field label="First name" name="firstname" autoComplete="given-name" maxLength={100} value={f.firstname} onChange={set('firstname')} autoFocus />
          <Field label="Last name" name="lastname" autoComplete="family-name" maxLength={100} value={f.lastname} onChange={set('lastname')} />
        </div>
        <Field
          label="Username"
          name="username"
          autoComplete="username"
          minLength={3}
          maxLength={32}
          pattern="[A-Za-z0-9_.\-]{3,32}"
          hint="3 to 32 letters, digits, dots, dashes or underscores"
          value={f.username}
          onChange={set('username')}
        />
        <Field label="Email" name="email" type="email" autoComplete="email" maxLength={254} value={f.email} onChange={set('email')} />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          minLength={12}
          maxLength={128}
          hint="At least 12 characters; avoid common passwords"
          value={f.password}
          onChange={set('password')}
        />
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button className="btn btn-primary btn-block" type="submit" disabled={busy}>
          {busy ? 'Creating account…' : 'Sign up'}
        </button>
      </form>
      <p className="switch">
        Already have an account? <Link to={next !== '/' ? `/login?next=${encodeURIComponent(next)}` : '/login'}>Log in</Link>
      </p>
    </AuthCard>
  );
}
