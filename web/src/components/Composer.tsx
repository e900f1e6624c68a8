import { forwardRef, useId, useImperativeHandle, useLayoutEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';

export const MAX_CONTENT = 32_000;

export interface ComposerHandle {
  focus(): void;
  setText(t: string): void;
}

/** The message box: Enter sends, Shift+Enter adds a line; Stop replaces Send while an answer runs. */
export const Composer = forwardRef<ComposerHandle, {
  running: boolean;
  disabled?: boolean;
  onSend: (text: string) => Promise<boolean>;
  onStop: () => void;
}>(function Composer({ running, disabled, onSend, onStop }, ref) {
  const [text, setText] = useState('');
  const [stopping, setStopping] = useState(false);
  const ta = useRef<HTMLTextAreaElement>(null);
  const hintId = useId();

  useImperativeHandle(ref, () => ({ focus: () => ta.current?.focus(), setText }), []);

  // Grow with the text, up to a limit (CSS max-height scrolls beyond it).
  useLayoutEffect(() => {
    const el = ta.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);

  useLayoutEffect(() => {
    if (!running) setStopping(false);
  }, [running]);

  const tooLong = text.length > MAX_CONTENT;
  const canSend = !!text.trim() && !tooLong && !disabled;

  const submit = async (e?: FormEvent) => {
    e?.preventDefault();
    if (!canSend || running) return;
    const sent = text;
    setText('');
    const ok = await onSend(sent);
    // Refused (e.g. an answer still running): give the text back.
    if (!ok) setText((cur) => (cur ? cur : sent));
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    }
  };

  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor={hintId + '-ta'} className="sr-only">
        Message
      </label>
      <textarea
        id={hintId + '-ta'}
        ref={ta}
        rows={1}
        placeholder="Send a message"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKeyDown}
        aria-describedby={hintId}
        aria-invalid={tooLong || undefined}
        disabled={disabled}
      />
      <div className="composer-actions">
        {running ? (
          <button
            type="button"
            className="btn btn-stop"
            onClick={() => {
              setStopping(true);
              onStop();
            }}
            disabled={stopping}
          >
            Stop
          </button>
        ) : (
          <button type="submit" className="btn btn-primary" disabled={!canSend}>
            Send
          </button>
        )}
      </div>
      <p id={hintId} className={`composer-hint small ${tooLong ? 'error' : 'muted'}`}>
        {tooLong
          ? `Too long: ${text.length.toLocaleString()} of ${MAX_CONTENT.toLocaleString()} characters.`
          : running
            ? 'An answer is being generated. Stop it to send now.'
            : 'Enter to send, Shift+Enter for a new line.'}
      </p>
    </form>
  );
});
