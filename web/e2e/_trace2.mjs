import { launch, newUser } from './helpers.mjs';
import { seedMessages } from './seed.mjs';
const base = process.env.DEMO_URL;
const u = newUser();
const su = await (await fetch(`${base}/api/auth/signup`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Parley-CSRF': '1' }, body: JSON.stringify(u) })).json();
const b = await launch();
const ctx = await b.newContext({ baseURL: base });
await ctx.request.post('/api/auth/login', { data: { username: u.username, password: u.password }, headers: { 'X-Parley-CSRF': '1' } });
const chat = (await (await ctx.request.post('/api/chats', { data: { title: 'x' }, headers: { 'X-Parley-CSRF': '1' } })).json()).chat;
const ids = await seedMessages({ socket: process.env.SOCK, chatId: chat.id, userId: su.user.id, model: chat.model, count: Number(process.env.N || 100) });
await ctx.addInitScript(() => {
  const want = new URLSearchParams(location.search).get('e2e_newest');
  window.__marks = {};
  window.__lt = [];
  new PerformanceObserver((l) => window.__lt.push(...l.getEntries().map((e) => [Math.round(e.startTime), Math.round(e.duration)]))).observe({ type: 'longtask', buffered: true });
  const mark = (k) => { if (!(k in window.__marks)) window.__marks[k] = Math.round(performance.now()); };
  const tick = () => {
    if (document.querySelector('ol[aria-label="Messages"]')) mark('list');
    if (document.querySelector('ol[aria-label="Messages"] li')) mark('anyrow');
    const el = document.querySelector(`[data-message-id="${want}"]`);
    const sc = document.querySelector('.messages-scroll');
    if (el) mark('newest-in-dom');
    if (el && sc) {
      const r = el.getBoundingClientRect(), v = sc.getBoundingClientRect();
      if (r.height > 0 && r.bottom > v.top && r.top < v.bottom) { mark('newest-visible'); return; }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
});
for (let i = 0; i < 3; i++) {
  const p = await ctx.newPage();
  const cdp = await ctx.newCDPSession(p);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  await p.goto(`/chats/${chat.id}?e2e_newest=${ids.at(-1)}`);
  await p.waitForFunction(() => window.__marks['newest-visible']);
  const e = await p.evaluate(() => ({ marks: window.__marks, lt: window.__lt,
    res: performance.getEntriesByType('resource').filter(e => e.name.includes('/api/')).map((e) => [e.name.replace(location.origin, '').slice(0, 50), Math.round(e.startTime), Math.round(e.responseEnd)]) }));
  console.log(JSON.stringify(e));
  const { profile } = await cdp.send('Profiler.stop');
  if (i === 2) {
    const self = new Map(); const byId = new Map(profile.nodes.map(n => [n.id, n]));
    const dt = profile.timeDeltas; const counts = new Map();
    profile.samples.forEach((id, k) => counts.set(id, (counts.get(id) || 0) + (dt[k] || 0)));
    for (const [id, us] of counts) { const n = byId.get(id); const cf = n.callFrame; const key = `${cf.functionName || "(anon)"} ${cf.url.split("/").pop()}:${cf.lineNumber}:${cf.columnNumber}`; self.set(key, (self.get(key) || 0) + us); }
    const byUrl = new Map();
    for (const [id, us] of counts) { const n = byId.get(id); const u = n.callFrame.url.split('/').pop() || n.callFrame.functionName; byUrl.set(u, (byUrl.get(u) || 0) + us); }
    console.log([...byUrl].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k, v]) => `${Math.round(v / 1000)}ms ${k}`).join('\n'));
    console.log([...self].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, v]) => `${Math.round(v / 1000)}ms ${k}`).join('\n'));
  }
  await p.close();
}
await b.close();
