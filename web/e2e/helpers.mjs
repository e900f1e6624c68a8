// Helpers for the browser tests: Debian's Chromium driven by playwright-core (no
// downloaded browser), a fresh profile per browser, and small polling assertions.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';

export const BASE_URL = (process.env.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter(Boolean);

export async function launch() {
  const executablePath = CANDIDATES.find((p) => existsSync(p));
  if (!executablePath) throw new Error('No Chromium found: apt-get install -y chromium (or set CHROMIUM_PATH)');
  // launch() gives every run a fresh temporary --user-data-dir of its own.
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** Collects the page's problems (page errors, CSP refusals) into problems, and returns it. */
export function watchProblems(page, problems = []) {
  page.on('console', (m) => {
    const t = m.text();
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(t)) problems.push(t);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return problems;
}

/** A fresh context (no cookies) and page; collects page errors and CSP violations. */
export async function newPage(browser, opts = {}) {
  const context = await browser.newContext({ baseURL: BASE_URL, viewport: { width: 1280, height: 800 }, ...opts });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  return { context, page, problems: watchProblems(page) };
}

/**
 * Runs fn({ context, page, problems }) on a fresh page (newPage(browser, opts)); once fn has
 * succeeded, fails if the page reported any problem. The context is closed in every case.
 */
export async function withPage(browser, fn, opts = {}) {
  const { context, page, problems } = await newPage(browser, opts);
  try {
    await fn({ context, page, problems });
    assert.deepEqual(problems, [], `the page reported problems (page errors, CSP refusals):\n${problems.join('\n')}`);
  } finally {
    await context.close();
  }
}

export async function waitUntil(fn, what, timeout = 20_000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const uniq = (p) => `${p}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

export function newUser() {
  const username = uniq('e2e_');
  return { username, email: `${username}@example.com`, password: 'plenty-long passphrase 42', firstname: 'Eve', lastname: 'Tester' };
}

export async function signUp(page, u) {
  await page.goto('/signup');
  await page.getByLabel('First name', { exact: true }).fill(u.firstname);
  await page.getByLabel('Last name', { exact: true }).fill(u.lastname);
  await page.getByLabel('Username', { exact: true }).fill(u.username);
  await page.getByLabel('Email', { exact: true }).fill(u.email);
  await page.getByLabel('Password', { exact: true }).fill(u.password);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.getByRole('button', { name: 'Start new chat' }).waitFor();
}

export async function logIn(page, u, path = '/login') {
  await page.goto(path);
  await page.getByLabel('Username', { exact: true }).fill(u.username);
  await page.getByLabel('Password', { exact: true }).fill(u.password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

export const messages = (page) => page.getByRole('list', { name: 'Messages' });
export const lastAnswer = (page) => messages(page).locator('li[data-role="assistant"]').last();

/** Sends a message from the composer with the keyboard and returns the new answer's row. */
export async function send(page, text) {
  const before = await messages(page).locator('li[data-role="assistant"]').count();
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
  await waitUntil(async () => (await messages(page).locator('li[data-role="assistant"]').count()) > before, 'the answer row');
  return lastAnswer(page);
}

export async function waitStatus(row, statuses, timeout = 30_000) {
  const want = Array.isArray(statuses) ? statuses : [statuses];
  return waitUntil(async () => {
    const s = await row.getAttribute('data-status');
    return want.includes(s) ? s : false;
  }, `answer status ${want.join('|')}`, timeout);
}

export async function startChat(page) {
  await page.goto('/');
  await page.getByRole('button', { name: 'Start new chat' }).click();
  await page.waitForURL(/\/chats\/[^/]+$/);
  await page.getByLabel('Message', { exact: true }).waitFor();
  return new URL(page.url()).pathname.split('/').pop();
}

/** Opens the account menu in the top bar (Log out, Log out everywhere). */
export async function openAccountMenu(page) {
  await page.locator('.account-menu > summary').click();
  await page.getByRole('button', { name: 'Log out everywhere' }).waitFor();
}

/** Fails with a clear message unless Parley answers at BASE_URL; hint says how to start it. */
export async function requireStack(hint) {
  const res = await fetch(`${BASE_URL}/healthz`).catch((e) => {
    throw new Error(`Parley is not reachable at ${BASE_URL} (${e.message})${hint ? `; ${hint}` : ''}`);
  });
  if (!res.ok) throw new Error(`GET /healthz answered ${res.status}`);
}

/** Signs u up through the API (not the browser), for tests that only need an account. */
export async function signUpThroughAPI(u) {
  const res = await fetch(`${BASE_URL}/api/auth/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Parley-CSRF': '1' },
    body: JSON.stringify(u),
  });
  if (res.status !== 201) throw new Error(`sign up through the API: ${res.status} ${await res.text()}`);
}

/**
 * The models offered by the "Model" picker, once the list has arrived: until then the
 * picker shows only a "Loading models…" option with an empty value.
 */
export async function modelOptions(page) {
  const picker = page.getByLabel('Model', { exact: true });
  await picker.waitFor();
  return waitUntil(async () => {
    const values = await picker.locator('option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
    return values.length > 0 && values;
  }, 'the model options');
}
