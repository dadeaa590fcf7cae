// Model output as Markdown, safely and without flicker while it streams. Model output is untrusted:
// marked (a well-kept CommonMark/GFM parser) renders it with raw HTML shown as text and images shown as
// links (no remote image loads by default), then DOMPurify sanitises the HTML before it touches the DOM,
// so even a parser bug cannot run script. Links open in a new tab with rel="noopener noreferrer", and
// only http(s) and mailto links keep their address.
//
// Streaming: the text is split into top-level blocks (paragraphs, lists, code fences); a block whose
// source is unchanged keeps its DOM node, so only the growing last block is re-rendered each frame —
// finished paragraphs do not flicker, lose a text selection, or reset a code block's scroll.
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import ini from 'highlight.js/lib/languages/ini';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import { Marked, type Token, type Tokens } from 'marked';

// The languages people ask a chat model about most: the full highlight.js set (192 languages) is 1,041 kB
// minified against 27 kB for the core (measured with vite's library build).
const LANGUAGES = { bash, c, cpp, css, diff, go, ini, java, javascript, json, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

const marked = new Marked({
  gfm: true,
  breaks: true, // models write single newlines meaning line breaks
  renderer: {
    // Raw HTML in model output is shown as the text it is, never parsed as markup.
    html: ({ text }: Tokens.HTML | Tokens.Tag) => escapeHtml(text),
    // No remote image loads (a tracking pixel in a reply would leak that it was read): a link instead.
    image: ({ href, text }: Tokens.Image) => `<a href="${escapeHtml(href)}">🖼 ${escapeHtml(text || href)}</a>`,
    code: ({ text, lang }: Tokens.Code) => {
      const language = (lang ?? '').trim().split(/\s/)[0]!.toLowerCase();
      const known = language && hljs.getLanguage(language) ? language : undefined;
      const body = known ? hljs.highlight(text, { language: known, ignoreIllegals: true }).value : escapeHtml(text);
      return `<pre><code class="hljs${known ? ` language-${known}` : ''}">${body}</code></pre>`;
    },
  },
});

const purify = DOMPurify(window);
purify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName !== 'A') return;
  const href = node.getAttribute('href') ?? '';
  if (!/^(https?:|mailto:)/i.test(href)) node.removeAttribute('href');
  else {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

const SANITIZE = {
  // Everything a reply could use to load, submit or run something, or to dress up as the app's own UI.
  FORBID_TAGS: ['img', 'picture', 'source', 'video', 'audio', 'iframe', 'object', 'embed', 'form', 'input', 'button', 'textarea', 'select', 'style', 'link', 'meta', 'svg', 'math'],
  FORBID_ATTR: ['style', 'id', 'name', 'srcset'],
  ALLOW_DATA_ATTR: false,
};

/** A code block gets a copy button (added as DOM after sanitising; its click is handled by the page). */
function decorate(block: HTMLElement, copyLabel: string): void {
  for (const pre of block.querySelectorAll('pre')) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'copy-code';
    button.textContent = copyLabel;
    pre.prepend(button);
  }
}

/** A message body that re-renders only the blocks whose source changed. */
export class MarkdownView {
  private blocks: { raw: string; node: HTMLElement }[] = [];
  private readonly root: HTMLElement;
  private readonly copyLabel: string;
  constructor(root: HTMLElement, copyLabel: string) {
    this.root = root;
    this.copyLabel = copyLabel;
  }

  update(markdown: string): void {
    const tokens = marked.lexer(markdown);
    let same = 0;
    while (same < tokens.length && same < this.blocks.length && this.blocks[same]!.raw === tokens[same]!.raw) same++;
    for (const stale of this.blocks.splice(same)) stale.node.remove();
    for (const token of tokens.slice(same)) {
      const node = document.createElement('div');
      node.className = 'md-block';
      // Reference-style links resolve against the whole text's definitions.
      const list = Object.assign([token] as Token[], { links: tokens.links });
      node.innerHTML = purify.sanitize(marked.parser(list), SANITIZE);
      decorate(node, this.copyLabel);
      this.root.append(node);
      this.blocks.push({ raw: token.raw, node });
    }
  }
}
