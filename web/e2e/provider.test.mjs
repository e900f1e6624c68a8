// Provider limits, end to end in a real browser: Parley's inference talks to the fake
// HuggingFace router (libs/devstack/cmd/fakehf), which answers for real with 429 and 503.
// Nothing is intercepted in the browser.
//
// The stack (scripts/browser-test.sh starts it) runs fakehf with
//   -tokens 0 -script 429-retry-after,429,429
// so the first answer asked of it meets three 429s in a row (Retry-After: 1, then two without
// a hint: the worker's backoff of about 2 s and 4 s, the last one waited outside the worker),
// then an answer that echoes the question; a `[fakehf:503-loading]` marker in a question makes
// every attempt of that answer meet "model is currently loading". Run this file first against
// a fresh fake (the scripted 429s are used once, by whichever answer comes first).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, logIn, messages, modelOptions, newUser, requireStack, signUpThroughAPI, startChat, waitStatus, waitUntil, withPage } from './helpers.mjs';

let browser;
const user = newUser();

before(async () => {
  await requireStack('scripts/browser-test.sh starts it with the fake router');
  await signUpThroughAPI(user);
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** Sends from the composer and returns the new answer's row (located by its id). */
async function sendAndFindAnswer(page, text) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
  const row = messages(page).locator('li[data-role="assistant"]').last();
  await row.waitFor();
  const id = await row.getAttribute('data-message-id');
  return { id, row: messages(page).locator(`li[data-message-id="${id}"]`) };
}

async function storedMessage(page, chatId, id) {
  const r = await (await page.request.get(`/api/chats/${chatId}/messages?limit=10`)).json();
  return r.messages.find((m) => m.id === id);
}

describe('provider limits in the browser (fake HuggingFace router)', { concurrency: false }, () => {
  test('the model list shows the HuggingFace models', async () => {
    await withPage(browser, async ({ page }) => {
      await logIn(page, user);
      const options = await modelOptions(page);
      assert.ok(options.includes('mistralai/Mistral-7B-Instruct-v0.3'), `models: ${options}`);
      assert.ok(!options.some((o) => /demo/i.test(o)), `no demo model: ${options}`);
    });
  });

  test('a rate-limited answer shows "waiting for the model" with the reason and a countdown, then completes by itself', async () => {
    await withPage(browser, async ({ page }) => {
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      const chatId = await startChat(page);
      const question = 'Are you there? Please answer when the model is free.';
      const { id, row } = await sendAndFindAnswer(page, question);

      // Watch the answer: every waiting note and countdown value, until it ends.
      const note = row.getByText(/Waiting for the model/);
      const seen = [];
      let stopSeen = false;
      const status = await waitUntil(async () => {
        if ((await note.count()) > 0) {
          const t = (await note.innerText().catch(() => '')).trim();
          if (t && seen.at(-1) !== t) seen.push(t);
          if (process.env.E2E_DEBUG) console.log(new Date().toISOString(), t, await row.getAttribute("data-status"));
          if (!stopSeen) stopSeen = (await page.getByRole('button', { name: 'Stop' }).count()) > 0;
        }
        const s = await row.getAttribute('data-status');
        return ['complete', 'failed', 'cancelled'].includes(s) ? s : false;
      }, 'the rate-limited answer to finish', 60_000);

      assert.ok(seen.length > 0, 'a waiting note was shown');
      for (const t of seen) assert.match(t, /^Waiting for the model: the model is rate limited\. (Trying again in \d+ s\.|Trying again now…) You can press Stop to cancel\.$/);
      // The countdown ticks down: some value is followed by a smaller one (or by "now").
      const left = seen.map((t) => (/in (\d+) s/.exec(t) ? Number(/in (\d+) s/.exec(t)[1]) : 0));
      assert.ok(
        left.some((v, i) => i > 0 && v < left[i - 1]),
        `the countdown went down: ${JSON.stringify(seen)}`,
      );
      assert.ok(Math.max(...left) >= 2, `a countdown of at least 2 s was shown: ${left}`);
      assert.ok(stopSeen, 'Stop was offered while waiting');

      assert.equal(status, 'complete');
      assert.equal(await row.getByText(/Waiting for the model/).count(), 0, 'the note is gone');
      assert.match(await row.locator('.answer').innerText(), new RegExp(`^You said: ${question.replace(/[.?]/g, '\\$&')}`));
      const stored = await storedMessage(page, chatId, id);
      assert.equal(stored.status, 'complete');
      assert.match(stored.content, /^You said: Are you there\?/);
      // A reload shows the stored answer.
      await page.reload();
      await waitStatus(messages(page).locator(`li[data-message-id="${id}"]`), 'complete');
    });
  });

  test('Stop while waiting for a loading model cancels the answer and stores it cancelled', async () => {
    await withPage(browser, async ({ page }) => {
      const cancels = [];
      page.on('response', (r) => {
        if (/\/api\/messages\/[^/]+\/cancel$/.test(new URL(r.url()).pathname)) cancels.push(r.status());
      });
      await logIn(page, user);
      await page.getByRole('button', { name: 'Start new chat' }).waitFor();
      const chatId = await startChat(page);
      const { id, row } = await sendAndFindAnswer(page, '[fakehf:503-loading] Hello, is the model awake?');
      const note = row.getByText(/Waiting for the model: the model is loading\./);
      await note.waitFor({ timeout: 20_000 });
      assert.match(await note.innerText(), /(Trying again in \d+ s\.|Trying again now…) You can press Stop to cancel\./);

      await page.getByRole('button', { name: 'Stop' }).click();
      await waitStatus(row, 'cancelled', 20_000);
      assert.deepEqual(cancels, [202]);
      await row.getByText('Stopped').waitFor();
      assert.equal(await row.getByText(/Waiting for the model/).count(), 0);
      await page.getByRole('button', { name: 'Send' }).waitFor();
      const stored = await storedMessage(page, chatId, id);
      assert.equal(stored.status, 'cancelled');

      // It stays cancelled: no later attempt brings it back.
      await page.waitForTimeout(5000);
      assert.equal((await storedMessage(page, chatId, id)).status, 'cancelled');
      await page.reload();
      await waitStatus(messages(page).locator(`li[data-message-id="${id}"]`), 'cancelled');
    });
  });
});
