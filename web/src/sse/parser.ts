// An incremental parser for the text/event-stream format (WHATWG HTML §9.2.6): feed it
// decoded text in chunks of any size; it returns the events completed by each chunk.

export interface SSEEvent {
  /** The event name; "message" when the stream gave none. */
  event: string;
  data: string;
  /** The id of the last complete event on this stream (ids persist across events). */
  id: string;
  /** A reconnection delay the server asked for, in ms. */
  retry?: number;
}

export class SSEParser {
  private buf = '';
  private data: string[] = [];
  private eventName = '';
  private lastId = '';
  /** The id of the event being read; it becomes lastId only once that event is complete. */
  private idBuf = '';
  private retry?: number;
  private sawBOM = false;
  private pendingCR = false;

  constructor(lastEventId = '') {
    this.lastId = lastEventId;
    this.idBuf = lastEventId;
  }

  get lastEventId(): string {
    return this.lastId;
  }

  push(chunk: string): SSEEvent[] {
    if (!this.sawBOM && chunk.length > 0) {
      this.sawBOM = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    // A CR at the end of the previous chunk may be the first half of a CRLF.
    if (this.pendingCR) {
      this.pendingCR = false;
      if (chunk.startsWith('\n')) chunk = chunk.slice(1);
    }
    this.buf += chunk;
    const out: SSEEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buf.slice(start, i);
      if (c === 13) {
        if (i + 1 < this.buf.length) {
          if (this.buf.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCR = true;
        }
      }
      start = i + 1;
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  private line(line: string): SSEEvent | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null; // comment (keepalive)
    const colon = line.indexOf(':');
    let field = line;
    let value = '';
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.eventName = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.idBuf = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private dispatch(): SSEEvent | null {
    this.lastId = this.idBuf;
    const name = this.eventName || 'message';
    const data = this.data;
    this.data = [];
    this.eventName = '';
    if (data.length === 0) return null;
    const ev: SSEEvent = { event: name, data: data.join('\n'), id: this.lastId };
    if (this.retry !== undefined) ev.retry = this.retry;
    return ev;
  }
}
