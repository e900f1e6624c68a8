// Guards on the source itself: no raw HTML injection and no script-readable storage.
import { describe, expect, it } from 'vitest';

const all = import.meta.glob<string>(['./**/*.ts', './**/*.tsx', '!./**/*.test.*', '!./test/**'], { query: '?raw', import: 'default', eager: true });
const sources = Object.entries(all);

describe('source guards', () => {
  it('finds the sources', () => expect(sources.length).toBeGreaterThan(10));
  it.each([
    ['dangerouslySetInnerHTML', /dangerouslySetInnerHTML/],
    ['innerHTML writes', /\.innerHTML\s*=/],
    ['localStorage', /localStorage/],
    ['sessionStorage', /sessionStorage/],
    ['document.cookie', /document\.cookie/],
    ['eval', /\beval\(|new Function\(/],
    ['rehype-raw', /rehype-raw/],
  ])('no %s', (_name, re) => {
    expect(sources.filter(([, text]) => re.test(text)).map(([p]) => p)).toEqual([]);
  });
});
