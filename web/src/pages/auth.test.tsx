import { beforeAll, describe, expect, it } from 'vitest';
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { apiError, fakeServer, json } from '../test/fakeServer';
import { chat, location, modelsList, renderApp, user } from '../test/renderApp';

const signedInRoutes = {
  'GET /api/models': () => json(200, modelsList),
  'GET /api/chats': () => json(200, { chats: [chat], next_cursor: '' }),
  'GET /api/chats/c1': () => json(200, { chat }),
  'GET /api/chats/c1/messages': () => json(200, { messages: [], next_cursor: '' }),
  'GET /api/chats/c1/events': () => new Response(new ReadableStream(), { status: 200 }),
};

// The chat view is loaded lazily; compile it once up front so no test waits for it.
beforeAll(() => import('./ChatPage'), 30_000);

describe('sign in', () => {
  it('has labelled fields, sends CSRF header with cookies, and returns to the deep link', async () => {
    let signedIn = false;
    const { requests } = fakeServer({
      ...signedInRoutes,
      'GET /api/auth/me': () => (signedIn ? json(200, { user }) : apiError(401, 'unauthenticated', 'Sign in.')),
      'POST /api/auth/refresh': () => apiError(401, 'unauthenticated', 'No session.'),
      'POST /api/auth/login': (r) => {
        const b = r.body as { username: string; password: string };
        if (b.password !== 'correct horse battery') return apiError(401, 'invalid_credentials', 'Wrong username or password.');
        signedIn = true;
        return json(200, { user, access_token: 'SECRET.TOKEN.VALUE', expires_at: '2030-01-01T00:00:00Z' });
      },
    });
    renderApp('/chats/c1');
    const username = await screen.findByLabelText('Username');
    expect(location.current).toBe('/login?next=%2Fchats%2Fc1');
    expect(screen.getByRole('link', { name: 'Sign up' })).toBeTruthy();

    await userEvent.type(username, 'ada');
    await userEvent.type(screen.getByLabelText('Password'), 'wrong password!');
    await userEvent.click(screen.getByRole('button', { name: 'Log in' }));
    expect((await screen.findByRole('alert')).textContent).toContain('Wrong username or password.');

    await userEvent.clear(screen.getByLabelText('Password'));
    await userEvent.type(screen.getByLabelText('Password'), 'correct horse battery');
    await userEvent.click(screen.getByRole('button', { name: 'Log in' }));
    await waitFor(() => expect(location.current).toBe('/chats/c1'));
    expect(await screen.findByRole('heading', { name: 'About engines' }, { timeout: 5000 })).toBeTruthy();

    const login = requests.filter((r) => r.url === '/api/auth/login');
    expect(login).toHaveLength(2);
    for (const r of requests) {
      expect(r.credentials).toBe('same-origin');
      if (r.method !== 'GET') {
        expect(r.headers['x-parley-csrf']).toBe('1');
        expect(r.headers['content-type']).toBe('application/json');
      }
      expect(r.headers['authorization']).toBeUndefined();
    }
    // The token in the login body is never kept anywhere a script could read it back.
    expect(JSON.stringify({ ...localStorage })).not.toContain('SECRET');
    expect(JSON.stringify({ ...sessionStorage })).not.toContain('SECRET');
    expect(localStorage.length + sessionStorage.length).toBe(0);
    expect(document.cookie).not.toContain('SECRET');
  });

  it('shows Retry-After on too many attempts', async () => {
    fakeServer({
      'GET /api/auth/me': () => apiError(401, 'unauthenticated', 'Sign in.'),
      'POST /api/auth/refresh': () => apiError(401, 'unauthenticated', 'No session.'),
      'POST /api/auth/login': () => apiError(429, 'too_many_attempts', 'Too many sign-in attempts.', { 'Retry-After': '42' }),
    });
    renderApp('/login');
    await userEvent.type(await screen.findByLabelText('Username'), 'ada');
    await userEvent.type(screen.getByLabelText('Password'), 'whatever whatever');
    await userEvent.click(screen.getByRole('button', { name: 'Log in' }));
    expect((await screen.findByRole('alert')).textContent).toBe('Too many sign-in attempts. Try again in 42 s.');
  });

  it('sign up has every labelled field and signs straight in', async () => {
    let signedIn = false;
    const { requests } = fakeServer({
      ...signedInRoutes,
      'GET /api/auth/me': () => (signedIn ? json(200, { user }) : apiError(401, 'unauthenticated', 'Sign in.')),
      'POST /api/auth/refresh': () => apiError(401, 'unauthenticated', 'No session.'),
      'POST /api/auth/signup': () => json(201, { user }),
      'POST /api/auth/login': () => {
        signedIn = true;
        return json(200, { user, access_token: 't', expires_at: '2030-01-01T00:00:00Z' });
      },
    });
    renderApp('/login');
    await userEvent.click(await screen.findByRole('link', { name: 'Sign up' }));
    await userEvent.type(screen.getByLabelText('First name'), 'Ada');
    await userEvent.type(screen.getByLabelText('Last name'), 'Lovelace');
    await userEvent.type(screen.getByLabelText('Username'), 'ada');
    await userEvent.type(screen.getByLabelText('Email'), 'ada@example.com');
    await userEvent.type(screen.getByLabelText('Password'), 'a long enough password');
    await userEvent.click(screen.getByRole('button', { name: 'Sign up' }));
    expect(await screen.findByRole('button', { name: 'Start new chat' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Continue last chat' })).toBeTruthy();
    expect(screen.getByLabelText('Model')).toBeTruthy();
    expect(requests.find((r) => r.url === '/api/auth/signup')?.body).toEqual({
      username: 'ada',
      email: 'ada@example.com',
      password: 'a long enough password',
      firstname: 'Ada',
      lastname: 'Lovelace',
    });
  });

  it('an expired session refreshes once and retries the call', async () => {
    let fresh = false;
    const { requests } = fakeServer({
      ...signedInRoutes,
      'GET /api/auth/me': () => (fresh ? json(200, { user }) : apiError(401, 'unauthenticated', 'Expired.')),
      'POST /api/auth/refresh': () => {
        fresh = true;
        return json(200, { access_token: 'x', expires_at: '2030-01-01T00:00:00Z' });
      },
    });
    renderApp('/');
    expect(await screen.findByRole('button', { name: 'Start new chat' })).toBeTruthy();
    expect(requests.filter((r) => r.url === '/api/auth/refresh')).toHaveLength(1);
  });
});

describe('home', () => {
  it('a first-time user asking to continue is offered a new chat', async () => {
    const { requests } = fakeServer({
      ...signedInRoutes,
      'GET /api/chats': () => json(200, { chats: [], next_cursor: '' }),
      'GET /api/auth/me': () => json(200, { user }),
      'GET /api/chats/latest': () => apiError(404, 'no_chats', 'You have no chats yet.'),
      'POST /api/chats': (r) => json(201, { chat: { ...chat, model: (r.body as { model: string }).model } }),
    });
    renderApp('/');
    await userEvent.click(await screen.findByRole('button', { name: 'Continue last chat' }));
    expect((await screen.findByRole('alert')).textContent).toContain('You have no chats yet');
    const start = screen.getByRole('button', { name: 'Start new chat' });
    expect(document.activeElement).toBe(start);
    await userEvent.selectOptions(screen.getByLabelText('Model'), 'big');
    await userEvent.click(start);
    await waitFor(() => expect(location.current).toBe('/chats/c1'));
    expect(requests.find((r) => r.method === 'POST' && r.url === '/api/chats')?.body).toEqual({ model: 'big' });
  });

  it('log out ends the session and shows sign in', async () => {
    let out = false;
    const { requests } = fakeServer({
      ...signedInRoutes,
      'GET /api/auth/me': () => (out ? apiError(401, 'unauthenticated', 'x') : json(200, { user })),
      'POST /api/auth/logout': () => {
        out = true;
        return new Response(null, { status: 204 });
      },
    });
    renderApp('/');
    await userEvent.click(await screen.findByText('Ada'));
    await userEvent.click(await screen.findByRole('button', { name: 'Log out' }));
    expect(await screen.findByLabelText('Username')).toBeTruthy();
    expect(location.current).toBe('/login');
    expect(requests.some((r) => r.method === 'POST' && r.url === '/api/auth/logout')).toBe(true);
  });

  it('log out everywhere ends every session (with the CSRF header) and shows sign in', async () => {
    let out = false;
    const { requests } = fakeServer({
      ...signedInRoutes,
      'GET /api/auth/me': () => (out ? apiError(401, 'unauthenticated', 'x') : json(200, { user })),
      'POST /api/auth/logout-all': () => {
        out = true;
        return new Response(null, { status: 204 });
      },
    });
    renderApp('/');
    await userEvent.click(await screen.findByText('Ada'));
    expect(screen.getByText(/Ends every session of your account/)).toBeTruthy();
    await userEvent.click(screen.getByRole('button', { name: 'Log out everywhere' }));
    expect(await screen.findByLabelText('Username')).toBeTruthy();
    expect(location.current).toBe('/login');
    const call = requests.find((r) => r.url === '/api/auth/logout-all');
    expect(call?.method).toBe('POST');
    expect(call?.headers['x-parley-csrf']).toBe('1');
    expect(requests.some((r) => r.url === '/api/auth/logout')).toBe(false);
  });

  it('log out everywhere that fails says so and stays signed in', async () => {
    fakeServer({
      ...signedInRoutes,
      'GET /api/auth/me': () => json(200, { user }),
      'POST /api/auth/logout-all': () => apiError(503, 'unavailable', 'The service is busy.'),
    });
    renderApp('/');
    await userEvent.click(await screen.findByText('Ada'));
    await userEvent.click(screen.getByRole('button', { name: 'Log out everywhere' }));
    expect((await screen.findByRole('alert')).textContent).toMatch(/Could not log out everywhere: The service is busy/);
    expect(location.current).toBe('/');
  });
});
