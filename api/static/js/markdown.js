/* Markdown (parsed documents, chat answers: both untrusted) to DOM nodes with markdown-it, then DOMPurify.
 *
 * markdown-it runs with `html: false`, so raw HTML in the text stays text; DOMPurify then keeps only the
 * tags and attributes markdown-it writes, a second guard should a future option or plugin let markup through.
 * Images are never loaded (a document could point them anywhere): they show as "[image: alt]".
 */

import DOMPurify from '../vendor/dompurify.js';
import markdownit from '../vendor/markdown-it.js';
import { highlightWithin } from './highlight.js';

const ALLOWED_TAGS = ['a', 'blockquote', 'br', 'code', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'li', 'ol',
  'p', 'pre', 'span', 's', 'strong', 'table', 'tbody', 'td', 'th', 'thead', 'tr', 'ul'];
const ALLOWED_ATTR = ['class', 'href', 'start', 'title'];
const COMMENTS = /^(?:\s*<!--[\s\S]*?-->)+\s*$/; // a paragraph of HTML comments only
const COMMENT = /<!--([\s\S]*?)-->/g;

function parser(breaks) {
  const md = markdownit({ html: false, linkify: false, typographer: false, breaks });
  md.renderer.rules.image = (tokens, idx) => {
    const alt = md.utils.escapeHtml(tokens[idx].content);
    return `<span class="md-image">[image${alt ? `: ${alt}` : ''}]</span>`;
  };
  return md;
}

// Documents keep markdown's rule that a single newline joins lines; an answer's line breaks are the writer's.
const DOCUMENT = parser(false);
const ANSWER = parser(true);

function sanitized(md, source) {
  return DOMPurify.sanitize(md.render(String(source || '')), {
    ALLOWED_TAGS, ALLOWED_ATTR, ALLOW_DATA_ATTR: false, RETURN_DOM_FRAGMENT: true,
  });
}

function replaceTag(node, tag) {
  const next = document.createElement(tag);
  next.append(...node.childNodes);
  node.replaceWith(next);
  return next;
}

/** The page's conventions on the sanitized nodes: block classes focusText finds, headings below the card's. */
function shape(frag) {
  for (const p of frag.querySelectorAll('p')) {
    // docling writes `<!-- image -->` where a picture was: a note each, not the comment's markup
    const text = p.textContent;
    if (!COMMENTS.test(text)) continue;
    p.replaceWith(...[...text.matchAll(COMMENT)].map((m) => m[1].trim()).filter(Boolean).map((inner) => {
      const note = document.createElement('div');
      note.className = 'md-note';
      note.textContent = `[${inner}]`;
      return note;
    }));
  }
  for (const h of frag.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    replaceTag(h, `h${Math.min(6, Number(h.tagName[1]) + 2)}`).className = 'md-h';
  }
  for (const list of frag.querySelectorAll('ul, ol')) list.classList.add('md-list');
  for (const pre of frag.querySelectorAll('pre')) pre.classList.add('md-code');
  for (const a of frag.querySelectorAll('a')) {
    if (/^https?:\/\//i.test(a.getAttribute('href') || '')) {
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
    } else a.replaceWith(...a.childNodes); // relative or other schemes: the words, not a way off the page
  }
  for (const block of [...frag.children]) {
    block.classList.add('md-block');
    if (block.tagName === 'TABLE') {
      block.classList.add('md-table');
      const wrap = document.createElement('div');
      wrap.className = 'md-table-wrap';
      block.replaceWith(wrap);
      wrap.append(block);
    }
  }
  return frag;
}

/** A document's markdown as DOM nodes, the regex's matches marked (outside code). */
export function renderMarkdown(source, re = null) {
  const frag = shape(sanitized(DOCUMENT, source));
  highlightWithin(frag, re);
  return frag;
}

/** A chat answer's markdown as DOM nodes (line breaks kept). */
export function renderAnswerMarkdown(source) {
  return shape(sanitized(ANSWER, source));
}

/** Markdown as the words a reader sees, on one line (for snippets). */
export function markdownText(source) {
  const frag = shape(sanitized(DOCUMENT, source));
  for (const note of frag.querySelectorAll('.md-note')) note.remove();
  return [...frag.children].map((b) => b.textContent).join(' ').replace(/\s+/g, ' ').trim();
}
