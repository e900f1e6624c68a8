import { useEffect, useRef } from 'react';
import { chats as chatApi } from '../api/endpoints';

/** Download links for a chat; closes on Escape or a click elsewhere. */
export function ExportMenu({ chatId }: { chatId: string }) {
  const ref = useRef<HTMLDetailsElement>(null);
  useEffect(() => {
    const close = (e: Event) => {
      const d = ref.current;
      if (!d?.open) return;
      if (e instanceof KeyboardEvent) {
        if (e.key !== 'Escape') return;
        d.open = false;
        d.querySelector('summary')?.focus();
      } else if (!d.contains(e.target as Node)) d.open = false;
    };
    document.addEventListener('mousedown', close);
    document.addEventListener('keydown', close);
    return () => {
      document.removeEventListener('mousedown', close);
      document.removeEventListener('keydown', close);
    };
  }, []);
  return (
    <details className="menu" ref={ref}>
      <summary className="btn btn-small">Export</summary>
      <div className="menu-pop">
        <a href={chatApi.exportUrl(chatId, 'markdown')} download onClick={() => ref.current && (ref.current.open = false)}>
          Export as Markdown
        </a>
        <a href={chatApi.exportUrl(chatId, 'json')} download onClick={() => ref.current && (ref.current.open = false)}>
          Export as JSON
        </a>
      </div>
    </details>
  );
}
