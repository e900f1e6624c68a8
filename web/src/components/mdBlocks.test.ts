import { describe, expect, it } from 'vitest';
import { renderToStaticMarkup } from 'react-dom/server';
import { createElement } from 'react';
import { markdownBlocks } from './mdBlocks';
import { Markdown } from './Markdown';

const para = (n: number) => `Paragraph ${n} ` + 'with some words in it '.repeat(12);
const long = (parts: string[]) => parts.join('\n\n') + '\n\n' + Array.from({ length: 8 }, (_, i) => para(100 + i)).join('\n\n');

describe('markdownBlocks', () => {
  it('keeps short texts whole', () => {
    expect(markdownBlocks('# a\n\nb\n\nc')).toEqual(['# a\n\nb\n\nc']);
  });

  it('splits long texts at blank lines between top-level blocks, and joins back to the text', () => {
    const text = long(['# Title', para(1), '```js\nconst a = 1;\n\nconst b = 2;\n```', '| a | b |\n|---|---|\n| 1 | 2 |', '> quote']);
    const blocks = markdownBlocks(text);
    expect(blocks.length).toBeGreaterThan(5);
    expect(blocks.join('\n\n')).toBe(text);
    // The fenced code (with its blank line) stays one block.
    expect(blocks).toContain('```js\nconst a = 1;\n\nconst b = 2;\n```');
  });

  it('never splits inside lists, indented continuations or unclosed fences', () => {
    const text = long(['- a\n- b', '- c (loose list)', '1. one', '2. two\n\n   continued', '    indented code', '~~~\nopen fence\n\nstill code']);
    const blocks = markdownBlocks(text);
    expect(blocks[0]).toBe('- a\n- b\n\n- c (loose list)\n\n1. one\n\n2. two\n\n   continued\n\n    indented code');
    expect(blocks.at(-1)).toMatch(/^~~~\nopen fence\n\nstill code/);
    expect(blocks.join('\n\n')).toBe(text);
  });

  it('renders texts with definitions or HTML blocks whole', () => {
    expect(markdownBlocks(long(['[x]: https://example.com', '[x] link']))).toHaveLength(1);
    expect(markdownBlocks(long(['<!--', 'comment', '-->']))).toHaveLength(1);
  });

  it('renders the same HTML block by block as whole', () => {
    const text = long([
      '# Title',
      para(1),
      '- a\n- b\n\n- c',
      '```ts\nlet x = 1;\n\nx++;\n```',
      '| a | b |\n|---|---|\n| 1 | 2 |',
      '> quote\n> more',
      '---',
      'Setext\n===',
      '3. three\n4. four',
      'Text with `code`, **bold** and [a link](https://example.com).',
    ]);
    expect(markdownBlocks(text).length).toBeGreaterThan(8);
    // (The whole text is kept whole by a definition that renders nothing; newlines between
    // block elements are not shown.)
    const html = (t: string) => renderToStaticMarkup(createElement(Markdown, { text: t })).replace(/>\n+</g, '><');
    const blockwise = html(text);
    expect(markdownBlocks(text + '\n\n[unused]: https://example.com')).toHaveLength(1);
    expect(blockwise).toBe(html(text + '\n\n[unused]: https://example.com'));
  });
});
