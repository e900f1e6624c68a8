// Long conversations in the browser: chats of 10, 100, 1,000 and 10,000 messages (seeded
// straight into the stack's MariaDB, see seed.mjs) are opened, scrolled up through older
// pages and answered, and a long Markdown answer streams while the person types. The tests
// assert only correctness and the bounded number of message elements; the timings are
// figures, written to E2E_BENCH_FILE (JSON) and printed as a table (docs/benchmarks.md,
// "Long conversations in the browser"). scripts/browser-test.sh runs this suite.
//
// BASE_URL           a stack serving the demo model whose MariaDB socket is E2E_MYSQL_SOCKET
// E2E_MYSQL_SOCKET   that stack's socket ($PARLEY_DATA_DIR/mysql/mysqld.sock; root, no password)
// E2E_PROVIDER_URL   a stack whose model echoes the question (the fake HuggingFace router with
//                    -tokens 0): the typing measurement; skipped when unset
// E2E_LONGCHAT_SIZES chat lengths (default 10,100,1000,10000)
// E2E_BENCH_FILE     where the figures go (default /tmp/parley-browser-bench.json)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { BASE_URL, launch, lastAnswer, messages, newUser, requireStack, waitStatus, waitUntil, watchProblems } from './helpers.mjs';
import { seedMessages } from './seed.mjs';

const SOCKET = process.env.E2E_MYSQL_SOCKET;
const PROVIDER_URL = (process.env.E2E_PROVIDER_URL || '').replace(/\/$/, '');
const SIZES = (process.env.E2E_LONGCHAT_SIZES || '10,100,1000,10000').split(',').map(Number);
const BENCH_FILE = process.env.E2E_BENCH_FILE || '/tmp/parley-browser-bench.json';
const OPEN_RUNS = 3;
// The bound the virtualised list must keep, whatever the chat's length.
const MAX_ROWS = 60;
const SCROLL = { ms: 5000, pxPerSecond: 8000 };

let browser;
const results = { command: 'bash scripts/browser-test.sh', started_at: new Date().toISOString(), machine: {}, sizes: [], typing: null };

async function apiSignUp(base) {
  const u = newUser();
  const res = await fetch(`${base}/api/auth/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Parley-CSRF': '1' },
    body: JSON.stringify(u),
  });
  const body = await res.text();
  assert.equal(res.status, 201, `sign up: ${body}`);
  return { ...u, id: JSON.parse(body).user.id };
}

/** A browser context signed in as u (cookies from the login call). */
async function signedIn(base, u, opts = {}) {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 }, ...opts });
  context.setDefaultTimeout(20_000);
  const res = await context.request.post('/api/auth/login', {
    data: { username: u.username, password: u.password },
    headers: { 'X-Parley-CSRF': '1' },
  });
  if (res.status() !== 200) assert.fail(`log in: ${res.status()} ${await res.text()}`);
  return context;
}

async function apiPost(context, path, body) {
  const res = await context.request.post(path, { data: body, headers: { 'X-Parley-CSRF': '1' } });
  if (!res.ok()) assert.fail(`POST ${path}: ${res.status()} ${await res.text()}`);
  return res.json();
}

// Installed in every page: notes (performance.now(), ms since navigation start) the first
// animation frame in which the message named by ?e2e_newest= is rendered and on screen.
function newestProbe() {
  const want = new URLSearchParams(location.search).get('e2e_newest');
  if (!want) return;
  const tick = () => {
    const el = document.querySelector(`[data-message-id="${want}"]`);
    const sc = document.querySelector('.messages-scroll');
    if (el && sc && el.textContent.trim()) {
      const r = el.getBoundingClientRect();
      const v = sc.getBoundingClientRect();
      if (r.height > 0 && r.bottom > v.top && r.top < v.bottom) {
        window.__e2eNewestAt = performance.now();
        return;
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

/** The seeded message numbers (1-based) of the rows in the DOM, in DOM order. */
async function rowNumbers(page, index) {
  const ids = await messages(page)
    .locator('li[data-message-id]')
    .evaluateAll((els) => els.map((e) => e.getAttribute('data-message-id')));
  return ids.map((id) => index.get(id) ?? -1);
}

function assertContiguous(nums, what) {
  assert.ok(nums.length > 0, `${what}: no rows`);
  assert.ok(!nums.includes(-1), `${what}: a row that was not seeded: ${nums}`);
  for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1] + 1, `${what}: rows out of order or missing: ${nums.join(',')}`);
}

const domCounts = (page) =>
  page.evaluate(() => ({
    rows: document.querySelectorAll('ol[aria-label="Messages"] > li').length,
    elements: document.getElementsByTagName('*').length,
  }));

/**
 * Counts animation frames for `ms` while fn(frame) runs each frame (fn may end early by
 * returning true). Frames longer than 1.5 intervals count as dropped (round(dt/16.7)-1 each).
 */
function frameStats(times, extra = {}) {
  const dts = [];
  for (let i = 1; i < times.length; i++) dts.push(times[i] - times[i - 1]);
  const sorted = [...dts].sort((a, b) => a - b);
  const q = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0);
  const dropped = dts.reduce((n, d) => n + Math.max(0, Math.round(d / (1000 / 60)) - 1), 0);
  const span = times.length > 1 ? times.at(-1) - times[0] : 0;
  return {
    duration_ms: Math.round(span),
    frames: times.length,
    fps: span ? +((1000 * (times.length - 1)) / span).toFixed(1) : 0,
    dropped_frames: dropped,
    worst_frame_ms: +(sorted.at(-1) ?? 0).toFixed(1),
    p95_frame_ms: +q(0.95).toFixed(1),
    ...extra,
  };
}

/** Scrolls the message list up at a steady speed for a while, in the page; returns frame times and more. */
async function scrollUp(page, { ms, pxPerSecond }) {
  return page.evaluate(
    ({ ms, pxPerSecond }) =>
      new Promise((resolve) => {
        const el = document.querySelector('.messages-scroll');
        const longTasks = [];
        let po;
        try {
          po = new PerformanceObserver((l) => longTasks.push(...l.getEntries().map((e) => e.duration)));
          po.observe({ type: 'longtask' });
        } catch {
          /* no long-task timing */
        }
        const olderBefore = performance.getEntriesByType('resource').filter((e) => /\/messages\?.*before=/.test(e.name)).length;
        const times = [];
        let maxRows = 0;
        let stalled = 0;
        let last;
        const frame = (t) => {
          times.push(t);
          if (last !== undefined) {
            if (el.scrollTop <= 0) stalled++;
            el.scrollTop -= ((t - last) * pxPerSecond) / 1000;
          }
          last = t;
          maxRows = Math.max(maxRows, document.querySelectorAll('ol[aria-label="Messages"] > li').length);
          if (t - times[0] < ms) requestAnimationFrame(frame);
          else {
            po?.disconnect();
            const older = performance.getEntriesByType('resource').filter((e) => /\/messages\?.*before=/.test(e.name));
            resolve({
              times,
              maxRows,
              stalledFrames: stalled,
              olderPages: older.length - olderBefore,
              olderPageMs: older.slice(olderBefore).map((e) => Math.round(e.duration)),
              longTasks,
            });
          }
        };
        requestAnimationFrame(frame);
      }),
    { ms, pxPerSecond },
  );
}

/** Frames while the last answer runs (until its status is final or the time is up). */
async function framesWhileAnswering(page, maxMs) {
  return page.evaluate(
    (maxMs) =>
      new Promise((resolve) => {
        const times = [];
        let maxRows = 0;
        const longTasks = [];
        let po;
        try {
          po = new PerformanceObserver((l) => longTasks.push(...l.getEntries().map((e) => e.duration)));
          po.observe({ type: 'longtask' });
        } catch {
          /* no long-task timing */
        }
        const frame = (t) => {
          times.push(t);
          const rows = document.querySelectorAll('ol[aria-label="Messages"] > li');
          maxRows = Math.max(maxRows, rows.length);
          const answers = document.querySelectorAll('ol[aria-label="Messages"] > li[data-role="assistant"]');
          const s = answers[answers.length - 1]?.getAttribute('data-status');
          const done = s === 'complete' || s === 'failed' || s === 'cancelled';
          if (!done && t - times[0] < maxMs) requestAnimationFrame(frame);
          else {
            po?.disconnect();
            resolve({ times, maxRows, longTasks, status: s });
          }
        };
        requestAnimationFrame(frame);
      }),
    maxMs,
  );
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

before(async () => {
  assert.ok(SOCKET, 'E2E_MYSQL_SOCKET must name the stack database socket (scripts/browser-test.sh sets it)');
  await requireStack();
  browser = await launch();
  results.machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, chromium: browser.version() };
});

after(async () => {
  await browser?.close();
  results.finished_at = new Date().toISOString();
  writeFileSync(BENCH_FILE, JSON.stringify(results, null, 2) + '\n');
  console.log(`# long-chat figures written to ${BENCH_FILE}`);
  console.log(table(results));
});

/** A Markdown summary of the figures, printed at the end (and pasted into docs/benchmarks.md). */
function table(r) {
  const lines = [
    '| messages | newest shown (median of 3) | first page API | rows in DOM (open / max while scrolling / max while answering) | elements in page | scrolling: fps, dropped frames, worst frame | older pages loaded while scrolling | answering: fps, dropped, worst | load avg |',
    '|---:|---:|---:|---|---:|---|---:|---|---|',
  ];
  for (const s of r.sizes) {
    lines.push(
      `| ${s.messages.toLocaleString('en')} | ${s.open.newest_shown_ms} ms | ${s.open.first_page_api_ms} ms | ${s.open.rows} / ${s.scroll?.max_rows ?? '–'} / ${s.answer.max_rows} | ${s.open.elements} | ${s.scroll ? `${s.scroll.fps} fps, ${s.scroll.dropped_frames} dropped of ${s.scroll.frames}, worst ${s.scroll.worst_frame_ms} ms` : '– (one page)'} | ${s.scroll?.older_pages ?? '–'} | ${s.answer.fps} fps, ${s.answer.dropped_frames} dropped, worst ${s.answer.worst_frame_ms} ms | ${s.load_average.join('–')} |`,
    );
  }
  if (r.typing) {
    const t = r.typing;
    lines.push(
      '',
      `Typing while a ${t.answer_chars.toLocaleString('en')}-character Markdown answer streamed (${t.stream_ms} ms): ${t.keystrokes} keystrokes, ` +
        `key-to-next-frame p50 ${t.streaming.p50} ms, p95 ${t.streaming.p95} ms, max ${t.streaming.max} ms, ${t.streaming.over_50ms} over 50 ms; ` +
        `idle: p50 ${t.idle.p50} ms, p95 ${t.idle.p95} ms, max ${t.idle.max} ms; longest event (Event Timing) ${t.streaming.event_timing_max_ms} ms.`,
    );
  }
  return lines.join('\n');
}

describe('long conversations in the browser', { concurrency: false }, () => {
  let owner;
  // One signed-in browser context for every size: its HTTP cache is warm after the first
  // page, as for anyone who used the app before.
  let context;
  let warmed = false;
  before(async () => {
    owner = await apiSignUp(BASE_URL);
    context = await signedIn(BASE_URL, owner);
    await context.addInitScript(newestProbe);
  });
  after(async () => {
    await context?.close();
  });

  for (const n of SIZES) {
    test(`a chat of ${n.toLocaleString('en')} messages opens at its newest page, scrolls up and answers with a bounded DOM`, async () => {
      const problems = [];
      let page;
      try {
        const loadBefore = os.loadavg()[0];
        const { chat } = await apiPost(context, '/api/chats', { title: `Long chat of ${n} messages` });
        const t0 = Date.now();
        const ids = await seedMessages({ socket: SOCKET, chatId: chat.id, userId: owner.id, model: chat.model, count: n });
        const seedMs = Date.now() - t0;
        const index = new Map(ids.map((id, i) => [id, i + 1]));
        const url = `/chats/${chat.id}?e2e_newest=${ids.at(-1)}`;

        if (!warmed) {
          const warm = await context.newPage();
          await warm.goto(url);
          await warm.waitForFunction(() => window.__e2eNewestAt, null, { timeout: 30_000 });
          await warm.close();
          warmed = true;
        }
        const opens = [];
        for (let i = 0; i < OPEN_RUNS; i++) {
          await page?.close();
          page = await context.newPage();
          watchProblems(page, problems);
          await page.goto(url, { waitUntil: 'commit' });
          const at = await (await page.waitForFunction(() => window.__e2eNewestAt, null, { timeout: 30_000 })).jsonValue();
          const api = await page.evaluate(
            () => performance.getEntriesByType('resource').find((e) => /\/messages\?limit=/.test(e.name) && !/before=/.test(e.name))?.duration ?? 0,
          );
          opens.push({ newest_ms: Math.round(at), api_ms: Math.round(api) });
        }

        // The newest message is the last row, on screen, at the bottom; the rows before it are
        // the newest page in order.
        await page.waitForTimeout(300);
        const first = await rowNumbers(page, index);
        assertContiguous(first, 'after opening');
        assert.equal(first.at(-1), n, 'the newest message is the last row');
        const atEnd = await page.locator('.messages-scroll').evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight <= 48);
        assert.ok(atEnd, 'opened at the bottom');
        const open = await domCounts(page);
        assert.ok(open.rows < MAX_ROWS, `rows in the DOM after opening: ${open.rows}`);

        // Scroll up steadily through older pages (a chat of one page has none).
        const s = n > 50 ? await scrollUp(page, SCROLL) : null;
        let upper = first;
        let afterScroll = open;
        if (s) {
          await waitUntil(async () => (await page.getByText('Loading earlier messages…').count()) === 0, 'older pages to finish loading');
          await page.waitForTimeout(200);
          upper = await rowNumbers(page, index);
          assertContiguous(upper, 'after scrolling up');
          assert.ok(upper[0] < first[0], `older messages shown after scrolling up (${upper[0]} vs ${first[0]})`);
          assert.ok(s.maxRows < MAX_ROWS, `rows in the DOM while scrolling: ${s.maxRows}`);
          afterScroll = await domCounts(page);
          assert.ok(afterScroll.rows < MAX_ROWS, `rows in the DOM after scrolling: ${afterScroll.rows}`);
        }
        if (n <= 100) {
          // A short chat can be scrolled to its very first message.
          await waitUntil(async () => {
            await page.locator('.messages-scroll').evaluate((el) => el.scrollTo(0, 0));
            return (await rowNumbers(page, index))[0] === 1;
          }, 'the first message');
          assertContiguous(await rowNumbers(page, index), 'at the top');
        }

        // An answer streams at the end of the chat (sending jumps back to the bottom).
        const box = page.getByLabel('Message', { exact: true });
        await box.fill(`A question after ${n} messages`);
        await box.press('Enter');
        const answerBox = lastAnswer(page);
        await waitUntil(async () => !index.has(await answerBox.getAttribute('data-message-id')), 'the new answer row');
        const a = await framesWhileAnswering(page, 30_000);
        await waitStatus(answerBox, 'complete');
        assert.match(await lastAnswer(page).innerText(), /demo model/i);
        assert.ok(a.maxRows < MAX_ROWS, `rows in the DOM while answering: ${a.maxRows}`);
        const tail = await rowNumbers(page, index);
        assert.deepEqual(tail.slice(-3), [n, -1, -1], 'the new question and answer follow the seeded newest message');

        results.sizes.push({
          messages: n,
          seed_ms: seedMs,
          // The machine's 1-minute load average around the measurement (other work on it
          // slows the browser down: compare figures taken at a similar load).
          load_average: [+loadBefore.toFixed(1), +os.loadavg()[0].toFixed(1)],
          open: {
            newest_shown_ms: median(opens.map((o) => o.newest_ms)),
            first_page_api_ms: median(opens.map((o) => o.api_ms)),
            runs: opens,
            rows: open.rows,
            elements: open.elements,
          },
          scroll: s && frameStats(s.times, {
            px_per_s: SCROLL.pxPerSecond,
            max_rows: s.maxRows,
            rows_after: afterScroll.rows,
            elements_after: afterScroll.elements,
            older_pages: s.olderPages,
            older_page_api_ms: s.olderPageMs,
            frames_at_top_waiting: s.stalledFrames,
            long_tasks: s.longTasks.length,
            long_task_ms: Math.round(sum(s.longTasks)),
            scrolled_from: first[0],
            scrolled_to: upper[0],
          }),
          answer: frameStats(a.times, { max_rows: a.maxRows, long_tasks: a.longTasks.length, long_task_ms: Math.round(sum(a.longTasks)) }),
        });
        assert.deepEqual(problems, []);
      } finally {
        await page?.close();
      }
    });
  }

  test('typing stays responsive while a long Markdown answer streams', { skip: !PROVIDER_URL && 'E2E_PROVIDER_URL is not set' }, async () => {
    const u = await apiSignUp(PROVIDER_URL);
    const context = await signedIn(PROVIDER_URL, u);
    try {
      const { chat } = await apiPost(context, '/api/chats', { title: 'Long answer' });
      const page = await context.newPage();
      const problems = watchProblems(page);
      await page.goto(`${PROVIDER_URL}/chats/${chat.id}`);
      const box = page.getByLabel('Message', { exact: true });
      await box.waitFor();
      await page.evaluate(installKeyLatency);

      // The model echoes the question: a long Markdown document (16,000 characters: headings,
      // paragraphs, lists, code, tables, quotes) comes back as the answer.
      const { doc, sections } = longMarkdown(16_000);
      await box.fill(doc);
      await box.press('Enter');
      const answer = lastAnswer(page);
      await waitUntil(async () => (await messages(page).locator('li[data-role="assistant"]').count()) > 0, 'the answer row');
      await waitUntil(async () => (await answer.getAttribute('data-status')) === 'streaming' && (await answer.locator('.answer').innerText()).length > 20, 'the answer to stream', 60_000);
      const streamStart = Date.now();
      await page.evaluate(() => {
        window.__keyLat.length = 0;
        window.__eventTiming.length = 0;
      });
      let typed = '';
      const phrase = 'the quick brown fox jumps over the lazy dog ';
      const source = phrase.repeat(50);
      while (['streaming', 'pending'].includes(await answer.getAttribute('data-status')) && typed.length < source.length - 8) {
        const chunk = source.slice(typed.length, typed.length + 8);
        await box.pressSequentially(chunk, { delay: 35 });
        typed += chunk;
      }
      const streamMs = Date.now() - streamStart;
      await waitStatus(answer, 'complete', 60_000);
      const streaming = await page.evaluate(() => ({ lat: [...window.__keyLat], et: [...window.__eventTiming] }));
      assert.equal(await box.inputValue(), typed, 'every keystroke reached the message box');
      const text = await answer.locator('.answer').innerText();
      assert.match(text, new RegExp(`Section ${sections}\\b`), 'the whole answer is shown');
      assert.match(text, /^You said: Please read this long document back to me\./, 'the echoed document');
      assert.ok(streaming.lat.length >= 20, `keystrokes measured while streaming: ${streaming.lat.length}`);

      // The same typing with nothing streaming, for comparison.
      await box.fill('');
      await page.evaluate(() => {
        window.__keyLat.length = 0;
        window.__eventTiming.length = 0;
      });
      await box.pressSequentially(phrase, { delay: 35 });
      const idle = await page.evaluate(() => ({ lat: [...window.__keyLat], et: [...window.__eventTiming] }));
      results.typing = {
        load_average: +os.loadavg()[0].toFixed(1),
        answer_chars: text.length,
        source_chars: doc.length,
        stream_ms: streamMs,
        keystrokes: streaming.lat.length,
        streaming: latencyStats(streaming),
        idle: latencyStats(idle),
      };
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
});

// In the page: for every keydown, the time from the key event to the frame after it (the
// first chance to show the typed character), and the Event Timing API's durations.
function installKeyLatency() {
  window.__keyLat = [];
  window.__eventTiming = [];
  window.addEventListener(
    'keydown',
    (e) => {
      const t0 = e.timeStamp;
      requestAnimationFrame(() => {
        const ch = new MessageChannel();
        ch.port1.onmessage = () => window.__keyLat.push(performance.now() - t0);
        ch.port2.postMessage(0);
      });
    },
    true,
  );
  try {
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) if (e.name === 'keydown' || e.name === 'keypress' || e.name === 'input') window.__eventTiming.push(e.duration);
    }).observe({ type: 'event', durationThreshold: 16, buffered: false });
  } catch {
    /* no Event Timing */
  }
}

function latencyStats({ lat, et }) {
  const s = [...lat].sort((a, b) => a - b);
  const q = (p) => +(s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0).toFixed(1);
  return {
    samples: s.length,
    p50: q(0.5),
    p95: q(0.95),
    max: +(s.at(-1) ?? 0).toFixed(1),
    over_50ms: s.filter((x) => x > 50).length,
    over_100ms: s.filter((x) => x > 100).length,
    event_timing_max_ms: Math.max(0, ...et),
  };
}

/** About `size` characters of varied Markdown: headings, paragraphs, lists, code, tables. */
function longMarkdown(size) {
  const parts = ['Please read this long document back to me.'];
  let i = 0;
  while (parts.join('\n\n').length < size) {
    i++;
    parts.push(`## Section ${i}`);
    parts.push(
      `This section talks about streaming answers and how a long conversation keeps moving. It has **bold** text, *emphasis*, \`inline code\` and a [link](https://example.com/${i}). ` +
        'Every sentence here is plain prose so that the Markdown parser has paragraphs to build, and the virtual list has a tall row to measure.',
    );
    parts.push(['- first point about rendering', '- second point about typing', '  - a nested point', '- third point with `code`'].join('\n'));
    parts.push('```ts\n' + Array.from({ length: 8 }, (_, j) => `const value${j} = compute(${i}, ${j}); // step ${j}`).join('\n') + '\n```');
    parts.push('| column | value | note |\n|---|---:|---|\n' + Array.from({ length: 4 }, (_, j) => `| row ${j} | ${i * j} | fine |`).join('\n'));
    parts.push(`> A quote closing section ${i}.`);
  }
  return { doc: parts.join('\n\n'), sections: i };
}
