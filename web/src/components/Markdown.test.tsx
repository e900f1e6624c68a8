import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { Markdown, safeUrl } from './Markdown';

describe('Markdown', () => {
  it('shows raw HTML as text and never creates script or event-handler elements', () => {
    const { container } = render(<Markdown text={'Hi <script>alert(1)</script> and <img src=x onerror="alert(2)"> <b>bold?</b>'} />);
    expect(container.querySelector('script')).toBeNull();
    expect(container.querySelector('img')).toBeNull();
    expect(container.querySelector('b')).toBeNull();
    expect(container.textContent).toContain('<script>alert(1)</script>');
    expect(container.textContent).toContain('<img src=x onerror="alert(2)">');
    for (const el of container.querySelectorAll('*')) {
      expect([...el.attributes].filter((a) => a.name.startsWith('on'))).toEqual([]);
    }
  });

  it('neutralises javascript: and other unsafe links', () => {
    const { container } = render(
      <Markdown text={'[a](javascript:alert(1)) [b](JaVa\tScRiPt:alert(1)) [c](data:text/html,<script>x</script>) [d](vbscript:x) [ok](https://example.com) [rel](/chats/1) [m](mailto:a@b.c)'} />,
    );
    const hrefs = [...container.querySelectorAll('a')].map((a) => a.getAttribute('href'));
    expect(hrefs).toEqual(['https://example.com', '/chats/1', 'mailto:a@b.c']);
    for (const a of container.querySelectorAll('a')) {
      expect(a.getAttribute('rel')).toContain('noopener');
      expect(a.getAttribute('target')).toBe('_blank');
    }
    expect(screen.getByText('a').tagName).toBe('SPAN');
    expect(container.innerHTML.toLowerCase()).not.toContain('javascript:');
  });

  it('renders images as links, so no request leaves for another site', () => {
    const { container } = render(<Markdown text={'![cat](https://evil.example/pixel.png) ![x](javascript:alert(1))'} />);
    expect(container.querySelector('img')).toBeNull();
    expect(screen.getByRole('link', { name: '[Image: cat]' }).getAttribute('href')).toBe('https://evil.example/pixel.png');
    expect(container.innerHTML.toLowerCase()).not.toContain('javascript:');
  });

  it('highlights fenced code with a copy button and keeps unknown languages plain', () => {
    const { container } = render(<Markdown text={'```python\ndef f():\n    return "<script>"\n```\n\n```weird\n<b>x</b>\n```'} />);
    const blocks = container.querySelectorAll('.code-block');
    expect(blocks).toHaveLength(2);
    expect(blocks[0].querySelector('.hljs-keyword')?.textContent).toBe('def');
    expect(blocks[0].textContent).toContain('return "<script>"');
    expect(container.querySelector('script')).toBeNull();
    expect(blocks[1].querySelector('b')).toBeNull();
    expect(screen.getAllByRole('button', { name: 'Copy code' })).toHaveLength(2);
  });

  it('supports GFM tables, strikethrough and task lists', () => {
    const { container } = render(<Markdown text={'| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~\n\n- [x] done'} />);
    expect(container.querySelector('table')).not.toBeNull();
    expect(container.querySelector('del')?.textContent).toBe('gone');
    expect(container.querySelector('input[type=checkbox]')).not.toBeNull();
  });
});

describe('safeUrl', () => {
  it.each([
    ['javascript:alert(1)', ''],
    [' javascript:alert(1)', ''],
    ['java\nscript:alert(1)', ''],
    ['data:text/html;base64,xx', ''],
    ['vbscript:msgbox', ''],
    ['http://a.b', 'http://a.b'],
    ['https://a.b/c?d=e:f', 'https://a.b/c?d=e:f'],
    ['/relative/path:x', '/relative/path:x'],
    ['#frag', '#frag'],
    ['mailto:x@y.z', 'mailto:x@y.z'],
  ])('%j -> %j', (input, want) => expect(safeUrl(input)).toBe(want));
});
