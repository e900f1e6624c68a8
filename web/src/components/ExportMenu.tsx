import { useDismiss } from '../lib/hooks';
import { chats as chatApi } from '../api/endpoints';

/** Download links for a chat; closes on Escape or a click elsewhere. */
export function ExportMenu({ chatId }: { chatId: string }) {
  const ref = useDismiss();
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
