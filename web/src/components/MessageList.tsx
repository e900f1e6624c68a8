// The chat's messages, virtualised: only the rows near the viewport are in the DOM, so a
// long chat stays fast. It sticks to the bottom while an answer streams, unless the person
// scrolls up; scrolling near the top loads the previous page, keeping the view steady.
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import type { Message } from '../api/types';
import { isRunning } from '../api/types';
import type { Waiting } from '../sse/generation';
import type { OutboxItem } from '../state/chatSession';
import { MessageItem } from './MessageItem';
import { Markdown } from './Markdown';

type Row = { kind: 'message'; key: string; message: Message } | { kind: 'outbox'; key: string; item: OutboxItem };

export interface MessageListProps {
  messages: Message[];
  outbox: OutboxItem[];
  waiting: Record<string, Waiting>;
  reconnecting: Record<string, boolean>;
  streamErrors: Record<string, string>;
  hasOlder: boolean;
  loadingOlder: boolean;
  olderError?: string;
  onLoadOlder: () => void;
  onRegenerate: () => void;
  onRetrySend: (localId: string) => void;
  onDiscardSend: (localId: string) => void;
  canRegenerate: boolean;
  /** Changes when the person sends: the list jumps to the bottom. */
  followToken: number;
}

const NEAR_TOP = 400;

/**
 * A row's height before it is measured, from its text's length (about 80 characters a
 * line of 24 px, plus the row's padding and footer): close guesses keep the scroll
 * position steady when a page of older messages arrives above.
 */
function estimate(row: Row | undefined): number {
  if (!row) return 140;
  const len = row.kind === 'message' ? row.message.content.length : row.item.content.length;
  return Math.min(4000, 72 + Math.ceil(Math.max(1, len) / 80) * 24);
}

export function MessageList(p: MessageListProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const rows: Row[] = [
    ...p.messages.map((m): Row => ({ kind: 'message', key: m.id, message: m })),
    ...p.outbox.map((o): Row => ({ kind: 'outbox', key: o.localId, item: o })),
  ];
  const rowsRef = useRef(rows);
  rowsRef.current = rows;
  let lastAnswer = -1;
  for (let i = p.messages.length - 1; i >= 0; i--) {
    if (p.messages[i].role === 'assistant') {
      lastAnswer = i;
      break;
    }
  }

  const v = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: (i) => estimate(rowsRef.current[i]),
    getItemKey: (i) => rowsRef.current[i].key,
    overscan: 4,
    anchorTo: 'end',
    followOnAppend: true,
    scrollEndThreshold: 32,
    // Without layout (tests), assume a viewport so rows still render.
    initialRect: { width: 800, height: 900 },
  });

  const [atEnd, setAtEnd] = useState(true);
  const total = v.getTotalSize();

  // Start at the newest message.
  const started = useRef(false);
  useLayoutEffect(() => {
    if (!started.current && rows.length > 0) {
      started.current = true;
      v.scrollToEnd();
    }
  });

  // The person sent something: go to the bottom whatever the position.
  useEffect(() => {
    if (p.followToken > 0) v.scrollToEnd();
  }, [p.followToken, v]);

  // Reads the scroll position (a layout read): on scroll events, which come after layout,
  // and when rows come or go, never on every render (a streaming answer renders often).
  const props = useRef(p);
  props.current = p;
  const check = useCallback(() => {
    const el = scrollRef.current;
    if (!el) return;
    const q = props.current;
    setAtEnd(el.scrollHeight - el.scrollTop - el.clientHeight <= 48);
    if (q.hasOlder && !q.loadingOlder && !q.olderError && el.scrollTop < NEAR_TOP) q.onLoadOlder();
  }, []);

  // After rows came or a page finished loading: maybe the page does not fill the view
  // yet, or we are still near the top.
  useEffect(() => {
    check();
  }, [rows.length, p.hasOlder, p.loadingOlder, check]);

  const items = v.getVirtualItems();

  return (
    <div className="messages-wrap">
      {(p.loadingOlder || p.olderError) && (
        <div className="older-status" role="status">
          {p.loadingOlder ? (
            'Loading earlier messages…'
          ) : (
            <>
              {p.olderError}{' '}
              <button type="button" className="link-btn" onClick={p.onLoadOlder}>
                Try again
              </button>
            </>
          )}
        </div>
      )}
      <div ref={scrollRef} className="messages-scroll" onScroll={check} tabIndex={-1}>
        <ol aria-label="Messages" className="messages" style={{ height: total }}>
          {items.map((vi) => {
            const row = rows[vi.index];
            if (!row) return null;
            const common = {
              'data-index': vi.index,
              ref: v.measureElement,
              'aria-setsize': p.hasOlder ? -1 : rows.length,
              'aria-posinset': p.hasOlder ? undefined : vi.index + 1,
              style: { transform: `translateY(${vi.start}px)` },
            };
            if (row.kind === 'outbox') {
              const o = row.item;
              return (
                <li key={vi.key} {...common} className="row" data-role="user" data-status={o.state === 'sending' ? 'sending' : 'unsent'}>
                  <article className="msg msg-user" aria-label="You said">
                    <div className={`bubble${o.state === 'failed' ? ' unsent' : ''}`}>
                      <Markdown text={o.content} />
                    </div>
                    {o.state === 'sending' ? (
                      <p className="muted small">Sending…</p>
                    ) : (
                      <p className="error small" role="alert">
                        Not sent: {o.error}{' '}
                        <button type="button" className="btn btn-small" onClick={() => p.onRetrySend(o.localId)}>
                          Retry sending
                        </button>{' '}
                        <button type="button" className="link-btn" onClick={() => p.onDiscardSend(o.localId)}>
                          Discard
                        </button>
                      </p>
                    )}
                  </article>
                </li>
              );
            }
            const m = row.message;
            return (
              <li key={vi.key} {...common} className="row" data-role={m.role} data-status={m.status} data-message-id={m.id} aria-busy={isRunning(m) || undefined}>
                <MessageItem
                  message={m}
                  waiting={p.waiting[m.id]}
                  reconnecting={p.reconnecting[m.id]}
                  streamError={p.streamErrors[m.id]}
                  isLastAnswer={vi.index === lastAnswer}
                  canRegenerate={p.canRegenerate}
                  onRegenerate={p.onRegenerate}
                />
              </li>
            );
          })}
        </ol>
      </div>
      {!atEnd && rows.length > 0 && (
        <button type="button" className="btn btn-small jump" onClick={() => v.scrollToEnd({ behavior: 'smooth' })}>
          Jump to latest ↓
        </button>
      )}
    </div>
  );
}
