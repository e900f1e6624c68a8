// Splits Markdown into top-level blocks that parse the same on their own as inside the
// whole text, so a long answer is rendered block by block: while it streams only its
// last block changes, and only that block is parsed again (typing stays responsive).

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
// Lines that make a split unsafe anywhere in the text: link reference and footnote
// definitions (they apply to the whole text) and HTML blocks, some of which run across
// blank lines. Such texts are rendered whole.
const GLOBAL = /^ {0,3}(\[[^\]\n]+\]:|<)/m;
// A line that may continue the block above it across a blank line: indented (list item
// continuation, indented code) or a list item (keeps a loose list one list).
const CONTINUES = /^(\s|[-*+] |\d{1,9}[.)]( |$)|[-*+]$)/;

/** The blocks of `text`, in order; joining them with "\n\n" gives the text back. */
export function markdownBlocks(text: string): string[] {
  if (text.length < 2000 || GLOBAL.test(text)) return [text];
  const lines = text.split('\n');
  const blocks: string[] = [];
  let start = 0;
  let fence = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const f = FENCE.exec(line);
    if (fence) {
      if (f && f[1][0] === fence[0] && f[1].length >= fence.length && line.trim() === f[1]) fence = '';
      continue;
    }
    if (f) {
      fence = f[1];
      continue;
    }
    // A blank line followed by a line that starts a new block at the margin.
    if (line === '' && i > start && lines[i - 1] !== '' && i + 1 < lines.length && lines[i + 1] !== '' && !CONTINUES.test(lines[i + 1])) {
      blocks.push(lines.slice(start, i).join('\n'));
      start = i + 1;
    }
  }
  if (start === 0) return [text];
  blocks.push(lines.slice(start).join('\n'));
  return blocks;
}
