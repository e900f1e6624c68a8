import { memo } from 'react';
import type { Message } from '../api/types';
import { isRunning } from '../api/types';
import { formatWait } from '../api/client';
import { waitingText, type Waiting } from '../sse/generation';
import { useCountdown } from '../lib/hooks';
import { Markdown } from './Markdown';
import { CopyButton } from './CodeBlock';

const statusLabel: Record<string, string> = {
  pending: 'Waiting to start',
  streaming: 'Generating',
  complete: 'Complete',
  cancelled: 'Stopped',
  failed: 'Failed',
};

function WaitingNotice({ waiting }: { waiting: Waiting }) {
  const left = useCountdown(waiting.retryAt);
  const reason = waitingText[waiting.reason] ?? waiting.reason.replace(/_/g, ' ');
  return (
    <p className="waiting" role="status">
      <span className="spinner" aria-hidden="true" /> Waiting for the model: {reason}.
      {waiting.retryAt ? (left > 0 ? ` Trying again in ${formatWait(left)}.` : ' Trying again now…') : ''} You can press Stop to cancel.
    </p>
  );
}

export interface MessageItemProps {
  message: Message;
  waiting?: Waiting;
  reconnecting?: boolean;
  streamError?: string;
  /** The last answer of the chat: it gets Regenerate / Retry. */
  isLastAnswer: boolean;
  canRegenerate: boolean;
  onRegenerate: () => void;
}

export const MessageItem = memo(function MessageItem({ message: m, waiting, reconnecting, streamError, isLastAnswer, canRegenerate, onRegenerate }: MessageItemProps) {
  if (m.role === 'user') {
    return (
      <article className="msg msg-user" aria-label="You said">
        <div className="bubble">
          <Markdown text={m.content} />
        </div>
      </article>
    );
  }
  const running = isRunning(m);
  return (
    <article className={`msg msg-assistant status-${m.status}`} aria-label="Assistant answered" aria-busy={running}>
      <div className={`answer${running && m.content && !waiting ? ' with-caret' : ''}`}>
        {m.content ? <Markdown text={m.content} /> : running && !waiting ? <p className="muted typing">Thinking…</p> : null}
      </div>
      {waiting && running && <WaitingNotice waiting={waiting} />}
      {reconnecting && running && (
        <p className="muted small" role="status">
          Connection lost, reconnecting…
        </p>
      )}
      {streamError && running && (
        <p className="error small" role="alert">
          Could not follow this answer: {streamError} Reload the page to try again.
        </p>
      )}
      {m.status === 'failed' && (
        <div className="error answer-error" role="alert">
          <strong>The answer failed.</strong> {m.error?.message ?? 'Something went wrong while generating it.'}
        </div>
      )}
      <div className="msg-foot">
        <span className={`msg-status badge-${m.status}`} data-status={m.status}>
          {running && <span className="spinner" aria-hidden="true" />}
          <span className={m.status === 'complete' ? 'sr-only' : undefined}>{statusLabel[m.status] ?? m.status}</span>
        </span>
        {m.model && <span className="muted small model-tag">{m.model}</span>}
        {!running && m.content && <CopyButton text={m.content} label="Copy answer" className="link-btn small" />}
        {isLastAnswer && !running && m.status === 'failed' && (
          <button type="button" className="btn btn-small" onClick={onRegenerate} disabled={!canRegenerate}>
            Retry
          </button>
        )}
        {isLastAnswer && !running && m.status !== 'failed' && (
          <button type="button" className="btn btn-small" onClick={onRegenerate} disabled={!canRegenerate}>
            Regenerate
          </button>
        )}
      </div>
    </article>
  );
});
