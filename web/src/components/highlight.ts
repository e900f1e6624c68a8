// Syntax highlighting with lowlight (highlight.js grammars producing a syntax tree, so
// the result is rendered as React elements, never as an HTML string). Only a handful of
// common languages are registered to keep the bundle lean; others are shown plain.
import { createLowlight } from 'lowlight';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';

const lowlight = createLowlight({ bash, c, cpp, css, diff, go, java, javascript, json, python, rust, sql, typescript, xml, yaml });
lowlight.registerAlias({ bash: ['shell', 'console'], xml: ['svg'], javascript: ['jsx'], typescript: ['tsx'] });

export type HNode =
  | { type: 'text'; value: string }
  | { type: 'element'; tagName: string; properties?: { className?: string[] | string }; children: HNode[] }
  | { type: 'root'; children: HNode[] };

/** Highlights code, or returns null when the language is unknown (or the code is huge). */
export function highlight(code: string, lang: string | undefined): HNode | null {
  if (!lang || code.length > 100_000) return null;
  const name = lang.toLowerCase();
  if (!lowlight.registered(name)) return null;
  try {
    return lowlight.highlight(name, code) as unknown as HNode;
  } catch {
    return null;
  }
}
