// Renders model and user text as Markdown, safely: raw HTML is shown as text (never
// parsed), links are limited to http(s), mailto and relative ones (javascript:, data:,
// vbscript: and the like become inert), images are shown as links (no third-party
// requests, and the CSP allows none), and no raw HTML is ever injected into the page.
import { memo, isValidElement, useMemo, type ReactElement, type ReactNode } from 'react';
import ReactMarkdown, { type Components, type Options } from 'react-markdown';
import { gfm } from 'micromark-extension-gfm';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { CodeBlock } from './CodeBlock';
import { markdownBlocks } from './mdBlocks';

const SAFE_PROTOCOL = /^(https?|mailto):$/i;

/** Keeps a URL only if it is relative or uses a safe protocol; otherwise returns ''. */
export function safeUrl(url: string): string {
  // Browsers ignore control characters and whitespace inside a scheme ("java\tscript:").
  const cleaned = url.replace(/[\u0000-\u0020\u007f-\u009f]/g, '');
  const colon = cleaned.indexOf(':');
  const firstDelim = cleaned.search(/[/?#]/);
  if (colon === -1 || (firstDelim !== -1 && colon > firstDelim)) {
    // Relative; but "//host" is protocol-relative (still http(s)), which is fine.
    return url;
  }
  return SAFE_PROTOCOL.test(cleaned.slice(0, colon + 1)) ? url : '';
}

interface MdNode {
  type: string;
  value?: string;
  children?: MdNode[];
}

/**
 * GitHub-flavoured Markdown (tables, task lists, strikethrough, autolinks, footnotes) for
 * parsing only: remark-gfm would also bundle the Markdown serialiser, which we never use.
 */
function remarkGfmParse(this: { data(): Record<string, unknown[] | undefined> }) {
  const data = this.data();
  (data.micromarkExtensions ??= []).push(gfm());
  (data.fromMarkdownExtensions ??= []).push(gfmFromMarkdown());
}

/** A remark plugin that turns raw HTML into plain text, so it is shown, not run. */
function remarkHtmlAsText() {
  return (tree: MdNode) => {
    const walk = (n: MdNode) => {
      if (n.type === 'html') n.type = 'text';
      n.children?.forEach(walk);
    };
    walk(tree);
  };
}

function textOf(node: ReactNode): string {
  if (typeof node === 'string' || typeof node === 'number') return String(node);
  if (Array.isArray(node)) return node.map(textOf).join('');
  if (isValidElement(node)) return textOf((node.props as { children?: ReactNode }).children);
  return '';
}

const components: Components = {
  pre({ children }) {
    // react-markdown gives <pre><code className="language-x">text</code></pre>.
    const child = (Array.isArray(children) ? children[0] : children) as ReactElement<{ className?: string; children?: ReactNode }>;
    if (isValidElement(child)) {
      const cls = child.props.className ?? '';
      const lang = /language-([\w+#.-]+)/.exec(cls)?.[1];
      const code = textOf(child.props.children).replace(/\n$/, '');
      return <CodeBlock code={code} lang={lang} />;
    }
    return <pre>{children}</pre>;
  },
  a({ href, children }) {
    if (!href) return <span className="md-bad-link">{children}</span>;
    return (
      <a href={href} target="_blank" rel="noopener noreferrer nofollow">
        {children}
      </a>
    );
  },
  img({ src, alt }) {
    const url = typeof src === 'string' ? src : '';
    const label = `Image: ${alt || url || 'untitled'}`;
    if (!url) return <span>[{label}]</span>;
    return (
      <a href={url} target="_blank" rel="noopener noreferrer nofollow">
        [{label}]
      </a>
    );
  },
  table({ children }) {
    return (
      <div className="md-table" tabIndex={0}>
        <table>{children}</table>
      </div>
    );
  },
};

const remarkPlugins = [remarkGfmParse, remarkHtmlAsText] as unknown as NonNullable<Options['remarkPlugins']>;

/** One top-level block (or the whole text), memoised on its text. */
const Block = memo(function Block({ text }: { text: string }) {
  return (
    <ReactMarkdown remarkPlugins={remarkPlugins} urlTransform={safeUrl} components={components}>
      {text}
    </ReactMarkdown>
  );
});

/**
 * Markdown for one message; memoised, so it re-renders only when its text changes. A long
 * text is rendered block by block (mdBlocks.ts): as an answer streams, only its last block
 * is parsed again, so the cost of an update does not grow with the answer.
 */
export const Markdown = memo(function Markdown({ text }: { text: string }) {
  const blocks = useMemo(() => markdownBlocks(text), [text]);
  return (
    <div className="md">
      {blocks.map((b, i) => (
        <Block key={i} text={b} />
      ))}
    </div>
  );
});
