// Seeds long chats for the browser measurements straight into a stack's MariaDB (sending
// 10,000 messages through the API would make 5,000 answers). The chat and its owner are
// made through the API first; this only adds finished messages to the chat, in the shape
// the chat service writes them (db/chat/00001_init.sql), through the `mariadb` client.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** A UUIDv7 (time-ordered, like the service's ids) for the given time. */
export function uuidv7(ms) {
  const b = randomBytes(16);
  let t = BigInt(ms);
  for (let i = 5; i >= 0; i--) {
    b[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A small deterministic generator, so every run seeds the same texts. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the a model answer stream message chat latency scroll page cursor render markdown list table code browser ' +
  'server queue token provider retry window history question reason rate limit frame layout virtual element ' +
  'keeps shows waits loads moves reads writes counts takes turns builds starts stops sends'
).split(' ');

function sentence(r, n) {
  const w = [];
  for (let i = 0; i < n; i++) w.push(WORDS[Math.floor(r() * WORDS.length)]);
  const s = w.join(' ');
  return s[0].toUpperCase() + s.slice(1) + '.';
}

function paragraph(r) {
  const out = [];
  const n = 2 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) out.push(sentence(r, 6 + Math.floor(r() * 10)));
  return out.join(' ');
}

/**
 * The text of message k (1-based, odd = question, even = answer). Every text names its
 * number ("Message k"), so the tests can check order and gaps. Answers are Markdown of
 * varied shape and length (paragraphs, lists, code, tables): 150 to about 2,000 chars.
 */
export function messageText(k) {
  const r = rng(k * 7919);
  if (k % 2 === 1) return `Message ${k}: ${sentence(r, 5 + Math.floor(r() * 15))}`;
  const parts = [`Message ${k}. ${paragraph(r)}`];
  const shape = Math.floor(r() * 6);
  if (shape === 1 || shape === 4) {
    const items = 2 + Math.floor(r() * 4);
    for (let i = 0; i < items; i++) parts.push(`- **${WORDS[i]}**: ${sentence(r, 4 + Math.floor(r() * 8))}`);
  }
  if (shape === 2 || shape === 4) {
    const lang = ['js', 'go', 'python', 'sql'][Math.floor(r() * 4)];
    const lines = [];
    for (let i = 0; i < 3 + Math.floor(r() * 8); i++) lines.push(`${lang === 'python' ? '' : 'const '}v${i} = ${Math.floor(r() * 1000)} // ${WORDS[i]}`);
    parts.push('```' + lang + '\n' + lines.join('\n') + '\n```');
  }
  if (shape === 3) {
    parts.push('| name | value |\n|---|---|\n' + [1, 2, 3].map((i) => `| ${WORDS[i]} | ${Math.floor(r() * 100)} |`).join('\n'));
  }
  if (shape >= 4) parts.push(paragraph(r));
  return parts.join('\n\n');
}

const sqlString = (s) => "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\0/g, '\\0') + "'";
const sqlTime = (ms) => "'" + new Date(ms).toISOString().replace('T', ' ').replace('Z', '') + "'";

/** Runs SQL through the mariadb client on the stack's socket (root, no password). */
export function runSQL(socket, sql, database = 'parley') {
  return new Promise((resolve, reject) => {
    const p = spawn('mariadb', ['--no-defaults', '--protocol=socket', `--socket=${socket}`, '-uroot', '--batch', '--skip-column-names', database], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`mariadb exited ${code}: ${err.slice(0, 500)}`))));
    p.stdin.end(sql);
  });
}

/**
 * Adds `count` finished messages (alternating question and answer, oldest first) to a
 * chat owned by userId, ending `endMs` ago at the latest. Returns their ids, oldest
 * first (ids[k-1] is "Message k").
 */
export async function seedMessages({ socket, chatId, userId, model, count, endMs = Date.now() - 60_000 }) {
  const ids = [];
  const start = endMs - count * 20_000;
  const rows = [];
  for (let k = 1; k <= count; k++) {
    const at = start + k * 20_000;
    const id = uuidv7(at);
    ids.push(id);
    const question = k % 2 === 1;
    rows.push(
      `(${sqlString(id)},${sqlString(chatId)},${sqlString(userId)},${sqlString(question ? 'user' : 'assistant')},` +
        `${sqlString(messageText(k))},'complete',${sqlString(question ? '' : model)},` +
        `${question ? 'NULL' : sqlString(ids[k - 2])},${sqlTime(at)},${sqlTime(at + (question ? 0 : 3000))})`,
    );
  }
  const batches = [];
  for (let i = 0; i < rows.length; i += 500) {
    batches.push(
      'INSERT INTO messages (id, chat_id, user_id, role, content, status, model, reply_to, created_at, finished_at) VALUES\n' +
        rows.slice(i, i + 500).join(',\n') +
        ';',
    );
  }
  const last = start + count * 20_000 + 3000;
  await runSQL(
    socket,
    'SET autocommit=0;\n' +
      batches.join('\n') +
      `\nUPDATE chats SET updated_at=${sqlTime(last)}, title_provisional=FALSE, title_due_at=NULL WHERE id=${sqlString(chatId)};\nCOMMIT;\n`,
  );
  return ids;
}
