// End-to-end tests of the web app in headless Chromium against a running Parley
// (BASE_URL, default http://127.0.0.1:8080) that serves the offline demo model.
// Run: BASE_URL=http://127.0.0.1:8080 npm run e2e   (see e2e/README.md)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  BASE_URL,
  lastAnswer,
  launch,
  logIn,
  messages,
  modelOptions,
  newPage,
  newUser,
  openAccountMenu,
  requireStack,
  send,
  signUp,
  signUpThroughAPI,
  startChat,
  uniq,
  waitStatus,
  waitUntil,
  withPage,
} from './helpers.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let browser;
// The account most tests sign in with (made through the API); the sign-up test makes its own.
const user = newUser();

before(async () => {
  await requireStack('start it (make run) or set BASE_URL');
  await signUpThroughAPI(user);
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

const exact = { exact: true };

async function storageIsEmpty(page) {
  return page.evaluate(() => ({
    local: Object.keys(localStorage),
    session: Object.keys(sessionStorage),
    cookie: document.cookie,
  }));
}

describe('Parley web app', { concurrency: false }, () => {
  test('a stranger is sent to sign in; the sign-in page links to sign up', async () => {
    await withPage(browser, async ({ page }) => {
      await page.goto('/');
      await page.waitForURL(/\/login$/);
      await page.getByLabel('Username', exact).waitFor();
      await page.getByLabel('Password', exact).waitFor();
      await page.getByRole('button', { name: 'Log in' }).waitFor();
      await page.getByRole('link', { name: 'Sign up' }).click();
      await page.waitForURL(/\/signup$/);
      for (const l of ['Username', 'Email', 'Password', 'First name', 'Last name']) await page.getByLabel(l, exact).waitFor();
    });
  });

  test('sign up, first-time continue offers a new chat, chat with the demo model, reload keeps it', async () => {
    await withPage(browser, async ({ context, page }) => {
      const user = newUser();
      await signUp(page, user);
      // The session is an HttpOnly cookie: nothing readable by scripts, nothing stored.
      const st = await storageIsEmpty(page);
      assert.deepEqual(st.local, []);
      assert.deepEqual(st.session, []);
      assert.ok(!/parley/i.test(st.cookie), `cookie visible to scripts: ${st.cookie}`);
      const cookies = await context.cookies();
      const session = cookies.filter((c) => /parley_(at|rt)$/.test(c.name));
      assert.ok(session.length >= 1, 'session cookies set');
      for (const c of session) {
        assert.equal(c.httpOnly, true, `${c.name} HttpOnly`);
        assert.equal(c.sameSite, 'Strict', `${c.name} SameSite`);
      }

      // First-time user asks to continue: offered a new chat instead.
      await page.getByRole('button', { name: 'Continue last chat' }).click();
      await page.getByText('You have no chats yet').waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Start new chat');
      await page.getByLabel('Model', exact).waitFor();

      const chatId = await startChat(page);
      const box = page.getByLabel('Message', exact);
      // Shift+Enter makes a new line, Enter sends.
      await box.fill('Hello');
      await box.press('Shift+Enter');
      await box.type('second line');
      assert.equal(await box.inputValue(), 'Hello\nsecond line');
      await box.press('Enter');
      const answer = await waitUntil(async () => ((await messages(page).locator('li[data-role="assistant"]').count()) > 0 ? lastAnswer(page) : false), 'answer');
      assert.equal(await box.inputValue(), '');
      const first = await answer.getAttribute('data-status');
      assert.ok(['pending', 'streaming', 'complete'].includes(first), `first status ${first}`);
      await waitStatus(answer, 'complete');
      const text = await answer.innerText();
      assert.match(text, /demo model/i);
      assert.match(text, /Hello second line/);
      const users = messages(page).locator('li[data-role="user"]');
      assert.equal(await users.count(), 1);
      await page.getByRole('button', { name: 'Send' }).waitFor();
      await page.getByRole('button', { name: 'Regenerate' }).waitFor();

      // A reload keeps the session and the conversation.
      await page.reload();
      await waitStatus(lastAnswer(page), 'complete');
      assert.match(await lastAnswer(page).innerText(), /demo model/i);
      assert.equal(new URL(page.url()).pathname, `/chats/${chatId}`);
    });
  });

  test('log out ends the session; a deep link returns there after log in; continue last chat', async () => {
    await withPage(browser, async ({ page }) => {
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      const chatId = await startChat(page);
      await waitStatus(await send(page, 'Remember me'), 'complete');
      await openAccountMenu(page);
      await page.getByRole('button', { name: 'Log out', exact: true }).click();
      await page.waitForURL(/\/login$/);
      // The old session no longer works, even for API calls.
      const me = await page.request.get('/api/auth/me');
      assert.equal(me.status(), 401);

      // A deep link while signed out: sign in, then land where the link pointed.
      await page.goto(`/chats/${chatId}`);
      await page.waitForURL(/\/login\?next=/);
      await page.getByLabel('Username', exact).fill(user.username);
      await page.getByLabel('Password', exact).fill(user.password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.waitForURL(new RegExp(`/chats/${chatId}$`));
      await waitStatus(lastAnswer(page), 'complete');

      // Continue last chat from home opens it.
      await page.getByRole('link', { name: 'Parley' }).click();
      await page.getByRole('button', { name: 'Continue last chat' }).click();
      await page.waitForURL(new RegExp(`/chats/${chatId}$`));
      await messages(page).waitFor();

      // Deep link reload and an unknown path both get the app (index.html).
      await page.goto(`/chats/${chatId}`);
      await waitStatus(lastAnswer(page), 'complete');
      await page.goto('/no/such/page');
      await page.getByRole('heading', { name: 'Page not found' }).waitFor();
    });
  });

  test('log out everywhere ends the sessions of every browser', async () => {
    const owner = newUser();
    const res = await fetch(`${BASE_URL}/api/auth/signup`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Parley-CSRF': '1' },
      body: JSON.stringify(owner),
    });
    assert.equal(res.status, 201);
    const a = await newPage(browser);
    const b = await newPage(browser);
    try {
      // The same person in two browsers.
      await logIn(a.page, owner);
      await a.page.getByRole('button', { name: 'Start new chat' }).waitFor();
      await logIn(b.page, owner);
      await b.page.getByRole('button', { name: 'Start new chat' }).waitFor();
      const chatId = await startChat(b.page);
      assert.equal((await b.page.request.get('/api/auth/me')).status(), 200);

      await openAccountMenu(a.page);
      await a.page.getByRole('button', { name: 'Log out everywhere' }).click();
      await a.page.waitForURL(/\/login$/);
      assert.equal((await a.page.request.get('/api/auth/me')).status(), 401);

      // The other browser's session ended too (its refresh cookie no longer works): its next
      // action goes to sign in, and back to the chat afterwards.
      assert.equal((await b.page.request.get('/api/auth/me')).status(), 401);
      await b.page.reload();
      await b.page.waitForURL(/\/login\?next=/);
      await b.page.getByLabel('Username', exact).fill(owner.username);
      await b.page.getByLabel('Password', exact).fill(owner.password);
      await b.page.getByRole('button', { name: 'Log in' }).click();
      await b.page.waitForURL(new RegExp(`/chats/${chatId}$`));
      await b.page.getByLabel('Message', exact).waitFor();
      assert.equal((await b.page.request.get('/api/auth/me')).status(), 200, 'a new sign-in works');
      assert.deepEqual(a.problems, []);
      assert.deepEqual(b.problems, []);
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });

  test('Stop ends a running answer; Regenerate replaces it', async () => {
    await withPage(browser, async ({ page }) => {
      const cancels = [];
      page.on('response', (r) => {
        if (/\/api\/messages\/[^/]+\/cancel$/.test(new URL(r.url()).pathname)) cancels.push(r.status());
      });
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      await startChat(page);
      const answer = await send(page, 'Tell me a long story please');
      const stop = page.getByRole('button', { name: 'Stop' });
      await stop.click({ timeout: 5_000 });
      // The stack paces the demo model's words 60 ms apart (about 4 s an answer), so Stop
      // always meets a running answer.
      const end = await waitStatus(answer, ['cancelled', 'complete']);
      assert.deepEqual(cancels, [202], 'one cancel request, accepted while the answer ran');
      assert.equal(end, 'cancelled');
      await page.getByRole('button', { name: 'Send' }).waitFor();
      await answer.getByText('Stopped').waitFor();
      const stopped = (await answer.locator('.answer').innerText()).trim();
      assert.ok(!/restart the inference workers\.$/.test(stopped), 'the answer was cut short');

      const firstId = await answer.getAttribute('data-message-id');
      await page.getByRole('button', { name: 'Regenerate' }).click();
      await waitUntil(async () => (await lastAnswer(page).getAttribute('data-message-id')) !== firstId, 'a new answer');
      await waitStatus(lastAnswer(page), 'complete');
      assert.equal(await messages(page).locator('li[data-role="assistant"]').count(), 1, 'the old answer was replaced');
      assert.match(await lastAnswer(page).innerText(), /demo model/i);
    });
  });

  test('a reload in the middle of an answer resumes its stream', async () => {
    await withPage(browser, async ({ page }) => {
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      const id = await startChat(page);
      const box = page.getByLabel('Message', exact);
      await box.fill('Please answer slowly');
      await box.press('Enter');
      await messages(page).locator('li[data-role="assistant"]').first().waitFor();
      await page.reload();
      const answer = lastAnswer(page);
      await answer.waitFor();
      // Every text shown while it streams must be a prefix of the final one (no repeats).
      const seen = [];
      const status = await waitUntil(async () => {
        seen.push(await answer.locator('.answer').innerText());
        const s = await answer.getAttribute('data-status');
        return s === 'complete' || s === 'failed' || s === 'cancelled' ? s : false;
      }, 'the resumed answer to finish', 30_000);
      assert.equal(status, 'complete');
      const final = (await answer.locator('.answer').innerText()).trim();
      assert.match(final, /demo model/i);
      assert.equal(final.split('offline demo model').length - 1, 1, 'text not repeated');
      for (const t of seen) assert.ok(final.startsWith(t.replace(/\s+$/, '').replace(/^Thinking…$/, '')), `"${t.slice(0, 40)}…" is a prefix`);
      assert.equal(new URL(page.url()).pathname, `/chats/${id}`);
    });
  });

  test('a long chat opens at its newest page, loads older ones on scroll, keeps the DOM small', async () => {
    await withPage(browser, async ({ page }) => {
      // Its own account: sends are rate limited per person.
      const longUser = newUser();
      await signUp(page, longUser);
      const id = await startChat(page);
      // Build 52 messages quickly through the API: send, then stop the answer at once.
      const headers = { 'X-Parley-CSRF': '1', 'Content-Type': 'application/json' };
      const N = 26;
      for (let i = 1; i <= N; i++) {
        let r;
        for (let attempt = 0; attempt < 100; attempt++) {
          r = await page.request.post(`/api/chats/${id}/messages`, { headers, data: { content: `question number ${i}` } });
          if (r.status() !== 409 && r.status() !== 429) break;
          const wait = Number(r.headers()['retry-after'] || 0) * 1000 || 200;
          await new Promise((res) => setTimeout(res, wait));
        }
        assert.equal(r.status(), 202, `send ${i}: ${await r.text()}`);
        const a = (await r.json()).assistant_message;
        await page.request.post(`/api/messages/${a.id}/cancel`, { headers, data: {} });
      }
      await waitUntil(async () => {
        const r = await (await page.request.get(`/api/chats/${id}/messages?limit=1`)).json();
        return ['cancelled', 'complete'].includes(r.messages.at(-1)?.status);
      }, 'the last answer to end');
      await page.reload();
      await messages(page).getByText(`question number ${N}`, { exact: true }).waitFor();
      const rows = () => messages(page).locator('li').count();
      assert.ok((await rows()) < 40, `bounded rows: ${await rows()}`);
      // Scroll to the top repeatedly: older pages arrive until the first question shows.
      await waitUntil(async () => {
        await page.locator('.messages-scroll').evaluate((el) => el.scrollTo(0, 0));
        return (await messages(page).getByText('question number 1', { exact: true }).count()) > 0;
      }, 'the first message after scrolling up', 30_000);
      assert.ok((await rows()) < 40, `still bounded: ${await rows()}`);
    });
  });

  test('a second tab sees new messages and the new title live', async () => {
    await withPage(browser, async ({ context, page }) => {
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      const id = await startChat(page);
      const other = await context.newPage();
      await other.goto(`/chats/${id}`);
      await other.getByLabel('Message', exact).waitFor();
      await other.waitForTimeout(500); // let its live event stream connect
      const word = uniq('live');
      await waitStatus(await send(page, `Seen from afar ${word}`), 'complete');
      await messages(other).locator('li[data-role="user"]').getByText(`Seen from afar ${word}`).waitFor({ timeout: 20_000 });
      await waitStatus(lastAnswer(other), 'complete');
      assert.match(await lastAnswer(other).innerText(), /demo model/i);
      // The derived title reaches the other tab's header without a reload.
      await waitUntil(async () => /Seen from afar/.test(await other.getByRole('heading', { level: 1 }).innerText()), 'the new title');
    });
  });

  test('when the session ends mid-use, sign in returns to the same place', async () => {
    await withPage(browser, async ({ context, page }) => {
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      const id = await startChat(page);
      await context.clearCookies();
      await page.getByLabel('Message', exact).fill('Are you there?');
      await page.getByLabel('Message', exact).press('Enter');
      await page.waitForURL(/\/login\?next=/);
      await page.getByText('Your session has ended').waitFor();
      await page.getByLabel('Username', exact).fill(user.username);
      await page.getByLabel('Password', exact).fill(user.password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.waitForURL(new RegExp(`/chats/${id}$`));
      await page.getByLabel('Message', exact).waitFor();
    });
  });

  test('model picker: new chats and the open chat', async () => {
    await withPage(browser, async ({ page }) => {
      await logIn(page, user);
      const picker = page.getByLabel('Model', exact);
      const options = await modelOptions(page);
      assert.ok(options.length >= 1, 'at least one model');
      const chosen = options[options.length - 1];
      await picker.selectOption(chosen);
      const id = await startChat(page);
      const chat = await (await page.request.get(`/api/chats/${id}`)).json();
      assert.equal(chat.chat.model, chosen);
      const inChat = page.getByLabel('Model', exact);
      assert.equal(await inChat.inputValue(), chosen);
      if (options.length > 1) {
        const other = options[0];
        await inChat.selectOption(other);
        await waitUntil(async () => (await (await page.request.get(`/api/chats/${id}`)).json()).chat.model === other, 'model saved');
        await page.reload();
        assert.equal(await page.getByLabel('Model', exact).inputValue(), other);
      }
    });
  });

  test('sidebar: history newest first, search, rename, delete with confirmation', async () => {
    await withPage(browser, async ({ page }) => {
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      const nav = page.getByRole('navigation', { name: 'Chat history' });
      await nav.getByRole('button', { name: 'New chat', exact: true }).click();
      await page.waitForURL(/\/chats\/[^/]+$/);
      const id = new URL(page.url()).pathname.split('/').pop();
      const word = uniq('zebra');
      await waitStatus(await send(page, `Let us talk about ${word}`), 'complete');

      // Newest first: the chat just used is at the top.
      const firstLink = nav.getByRole('link').first();
      await waitUntil(async () => (await firstLink.getAttribute('href')) === `/chats/${id}`, 'newest chat first');

      // Search finds it by message text.
      await page.getByLabel('Search chats', exact).fill(word);
      await waitUntil(async () => (await nav.getByRole('link').count()) === 1, 'one search result');
      assert.equal(await nav.getByRole('link').first().getAttribute('href'), `/chats/${id}`);

      // Rename.
      const link = nav.getByRole('link').first();
      const oldTitle = (await link.innerText()).trim();
      await nav.getByRole('button', { name: `Rename chat ${oldTitle}` }).click();
      const title = uniq('Renamed ');
      await nav.getByLabel('Chat title', exact).fill(title);
      await nav.getByLabel('Chat title', exact).press('Enter');
      await nav.getByRole('link', { name: title }).waitFor();
      await page.getByRole('heading', { name: title }).waitFor();
      await page.getByLabel('Search chats', exact).fill('');
      await page.getByLabel('Search chats', exact).fill(title);
      await waitUntil(async () => (await nav.getByRole('link').count()) === 1, 'found by the new title');

      // Delete: cancel first, then confirm.
      await nav.getByRole('button', { name: `Delete chat ${title}` }).click();
      const dialog = page.getByRole('alertdialog', { name: 'Delete chat?' });
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'detached' });
      assert.equal((await page.request.get(`/api/chats/${id}`)).status(), 200);
      await nav.getByRole('button', { name: `Delete chat ${title}` }).click();
      await dialog.getByRole('button', { name: 'Delete' }).click();
      await page.waitForURL(/\/$/);
      await waitUntil(async () => (await nav.getByRole('link').count()) === 0, 'chat gone from the list');
      assert.equal((await page.request.get(`/api/chats/${id}`)).status(), 404);
    });
  });

  test('markdown from people and models cannot run script', async () => {
    await withPage(browser, async ({ page }) => {
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      await startChat(page);
      const answer = await send(page, '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">\n\n[click](javascript:window.__pwned=3) **bold**');
      await waitStatus(answer, 'complete');
      const list = messages(page);
      assert.equal(await list.locator('script, img, iframe').count(), 0);
      assert.equal(await list.locator('a[href^="javascript"]').count(), 0);
      await list.locator('li[data-role="user"] strong', { hasText: 'bold' }).waitFor();
      await list.getByText('click', { exact: true }).first().click();
      assert.equal(await page.evaluate(() => window.__pwned), undefined);
      assert.match(await list.locator('li[data-role="user"]').innerText(), /<script>window.__pwned=1<\/script>/);
    });
  });

  test('caching: index.html is revalidated, hashed assets are immutable', async () => {
    const index = await fetch(`${BASE_URL}/chats/anything`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') || '', /text\/html/);
    assert.match(index.headers.get('cache-control') || '', /no-cache|no-store/);
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, 'index.html references a hashed script');
    const a = await fetch(`${BASE_URL}${asset}`);
    assert.equal(a.status, 200);
    assert.match(a.headers.get('cache-control') || '', /immutable/);
    const missing = await fetch(`${BASE_URL}/assets/nope-123.js`);
    assert.equal(missing.status, 404);
  });

  test('phone-sized screen: every screen fits and the history opens as a drawer', async () => {
    const phone = { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
    await withPage(browser, async ({ page }) => {
      const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
      await logIn(page, user);
      const start = page.getByRole('button', { name: 'Start new chat' });
      await start.waitFor();
      assert.ok(await fits(), 'home fits the width');
      const nav = page.getByRole('navigation', { name: 'Chat history' });
      assert.equal(await nav.isVisible(), false, 'history hidden until asked for');
      await page.getByRole('button', { name: 'Chat history' }).click();
      await nav.waitFor({ state: 'visible' });
      await page.getByLabel('Search chats', exact).waitFor({ state: 'visible' });
      await page.keyboard.press('Escape');
      await nav.waitFor({ state: 'hidden' });

      await start.click();
      await page.waitForURL(/\/chats\/[^/]+$/);
      const box = page.getByLabel('Message', exact);
      await box.waitFor();
      const answer = await send(page, 'Hi from a phone');
      await waitStatus(answer, 'complete');
      assert.ok(await fits(), 'chat fits the width');
      const boxRect = await box.boundingBox();
      assert.ok(boxRect && boxRect.y + boxRect.height <= 740, 'message box on screen');
      const sendBtn = await page.getByRole('button', { name: 'Send' }).boundingBox();
      assert.ok(sendBtn && sendBtn.x + sendBtn.width <= 375, 'Send on screen');
      await page.screenshot({ path: process.env.E2E_SCREENSHOT_DIR ? `${process.env.E2E_SCREENSHOT_DIR}/phone-chat.png` : '/tmp/parley-phone-chat.png' });
    }, phone);
  });

  test('accessibility: no serious axe-core violations on the main screens (light and dark)', async () => {
    for (const colorScheme of ['light', 'dark']) {
      // bypassCSP only so that the checker itself can be injected.
      await withPage(browser, async ({ page }) => {
        const check = async (what) => {
          await page.addScriptTag({ path: axePath });
          const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
          const bad = res.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')})`);
          assert.deepEqual(bad, [], `${what} (${colorScheme})`);
        };
        await page.goto('/login');
        await page.getByLabel('Username', exact).waitFor();
        await check('sign in');
        await page.goto('/signup');
        await page.getByLabel('Email', exact).waitFor();
        await check('sign up');
        await logIn(page, user);
        await page.getByRole('button', { name: 'Start new chat' }).waitFor();
        await check('home');
        await startChat(page);
        await waitStatus(await send(page, 'Check `code` and\n\n```js\nconst a = 1;\n```'), 'complete');
        await check('chat');
      }, { bypassCSP: true, colorScheme });
    }
  });

  test('keyboard: focus is visible and the composer is reachable', async () => {
    await withPage(browser, async ({ page }) => {
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      await page.keyboard.press('Tab');
      const outline = await page.evaluate(() => {
        const el = document.activeElement;
        if (!el || el === document.body) return 'none';
        const s = getComputedStyle(el);
        return `${s.outlineStyle} ${s.outlineWidth}`;
      });
      assert.notEqual(outline, 'none');
      assert.doesNotMatch(outline, /^none|0px$/);
    });
  });
});
