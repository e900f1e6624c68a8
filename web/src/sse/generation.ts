// How generation events (GET /api/messages/{id}/stream) change an answer. Pure, so the
// rules for resume, reset, waiting and the terminal events are tested on their own.
import type { ApiErrorBody, Message } from '../api/types';
import type { SSEEvent } from './parser';

export type WaitReason = 'rate_limited' | 'model_loading' | 'overloaded' | 'queued' | string;

export interface Waiting {
  reason: WaitReason;
  /** ms since epoch, when the server expects to try again. */
  retryAt?: number;
}

/** The live view of one answer while its stream is open. */
export interface Live {
  message: Message;
  /** The last seq applied (deltas at or below it are duplicates from a resume). */
  seq: number;
  waiting?: Waiting;
  /** Set once done or error arrived. */
  finished: boolean;
}

export function startLive(message: Message): Live {
  // The stream replays the whole answer from seq 1, so start from empty text.
  return { message: { ...message, content: '' }, seq: 0, finished: false };
}

function parse(data: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(data);
    return v && typeof v === 'object' ? v : null;
  } catch {
    return null;
  }
}

const seqOf = (ev: SSEEvent, d: Record<string, unknown> | null): number => {
  if (d && typeof d.seq === 'number') return d.seq;
  if (ev.id === '') return NaN;
  const n = Number(ev.id);
  return Number.isFinite(n) ? n : NaN;
};

/** Applies one SSE event; returns the same object when nothing changed. */
export function applyEvent(live: Live, ev: SSEEvent): Live {
  const d = parse(ev.data);
  const seq = seqOf(ev, d);
  if (!Number.isNaN(seq) && seq <= live.seq && ev.event !== 'done' && ev.event !== 'error') return live; // duplicate
  const nextSeq = Number.isNaN(seq) ? live.seq : seq;
  switch (ev.event) {
    case 'delta': {
      const text = d && typeof d.text === 'string' ? d.text : '';
      return {
        ...live,
        seq: nextSeq,
        waiting: undefined,
        message: { ...live.message, status: 'streaming', content: live.message.content + text },
      };
    }
    case 'reset':
      return { ...live, seq: nextSeq, waiting: undefined, message: { ...live.message, content: '' } };
    case 'waiting': {
      const reason = d && typeof d.reason === 'string' ? d.reason : 'queued';
      const at = d && typeof d.retry_at === 'string' ? Date.parse(d.retry_at) : NaN;
      return { ...live, seq: nextSeq, waiting: { reason, retryAt: Number.isNaN(at) ? undefined : at } };
    }
    case 'done': {
      const m = pickMessage(d);
      return {
        ...live,
        seq: nextSeq,
        waiting: undefined,
        finished: true,
        message: m ? { ...live.message, ...m } : { ...live.message, status: 'complete' },
      };
    }
    case 'error': {
      const m = d && isObj(d.message) ? (d.message as unknown as Message) : null;
      const err = d && isObj(d.error) ? (d.error as unknown as ApiErrorBody) : undefined;
      return {
        ...live,
        seq: nextSeq,
        waiting: undefined,
        finished: true,
        message: {
          ...live.message,
          ...(m ?? {}),
          status: 'failed',
          error: err ?? m?.error ?? { code: 'unknown', message: 'The answer failed.' },
        },
      };
    }
    default:
      return live;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object';

/** done's data is {"message": {...}} (api.md also allows the bare message). */
function pickMessage(d: Record<string, unknown> | null): Message | null {
  if (!d) return null;
  if (isObj(d.message)) return d.message as unknown as Message;
  if (typeof d.id === 'string' && typeof d.status === 'string') return d as unknown as Message;
  return null;
}

export const waitingText: Record<string, string> = {
  rate_limited: 'the model is rate limited',
  model_loading: 'the model is loading',
  overloaded: 'the model is overloaded',
  queued: 'your request is queued',
};
