/**
 * Markdown-light: paragraphs, line breaks, bullet and numbered lists, **bold**, *italic*,
 * `code` and links, rendered to an HTML string.
 *
 * Safety by construction: every piece of server text is HTML-escaped *before* any markup
 * is added, and links are only made for http(s)/mailto URLs, so model output can never
 * inject tags or attributes. Pure functions, no DOM.
 */

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text) {
  return String(text ?? '').replace(/[&<>"']/g, (ch) => ESCAPES[ch]);
}

const SAFE_URL = /^(https?:\/\/|mailto:)[^\s]+$/i;

function link(label, escapedUrl) {
  return (
    `<a href="${escapedUrl}" target="_blank" rel="noopener noreferrer nofollow">${label}</a>`
  );
}

/** Inline markup on one already-escaped line. */
function inline(escaped) {
  const codeSpans = [];
  let out = escaped.replace(/`([^`]+)`/g, (_, code) => {
    codeSpans.push(`<code>${code}</code>`);
    return `\u0000${codeSpans.length - 1}\u0000`;
  });
  const links = [];
  const keep = (html) => {
    links.push(html);
    return `\u0001${links.length - 1}\u0001`;
  };
  out = out.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (whole, label, url) =>
    SAFE_URL.test(url) ? keep(link(label, url)) : whole,
  );
  out = out.replace(/\bhttps?:\/\/[^\s<]+[^\s<.,;:!?)&]/gi, (url) => keep(link(url, url)));
  out = out.replace(/\*\*([^*]+?)\*\*/g, '<strong>$1</strong>');
  out = out.replace(/__([^_]+?)__/g, '<strong>$1</strong>');
  out = out.replace(/(^|[\s(])\*([^*\s][^*]*?)\*(?=[\s).,;:!?]|$)/g, '$1<em>$2</em>');
  out = out.replace(/\u0001(\d+)\u0001/g, (_, i) => links[Number(i)]);
  return out.replace(/\u0000(\d+)\u0000/g, (_, i) => codeSpans[Number(i)]);
}

const BULLET = /^\s*[-*•]\s+(.*)$/;
const NUMBERED = /^\s*(\d{1,3})[.)]\s+(.*)$/;

/** Render markdown-light text to a safe HTML string. */
export function renderMarkdown(text) {
  const lines = String(text ?? '')
    .replace(/\u0000|\u0001/g, '')
    .split(/\r\n|\r|\n/);
  const html = [];
  let paragraph = [];
  let list = null; // {tag, items}

  const flushParagraph = () => {
    if (paragraph.length) html.push(`<p>${paragraph.map(inline).join('<br>')}</p>`);
    paragraph = [];
  };
  const flushList = () => {
    if (list) {
      const items = list.items.map((item) => `<li>${inline(item)}</li>`).join('');
      const start = list.tag === 'ol' && list.start !== 1 ? ` start="${list.start}"` : '';
      html.push(`<${list.tag}${start}>${items}</${list.tag}>`);
    }
    list = null;
  };

  for (const raw of lines) {
    const line = escapeHtml(raw);
    const bullet = BULLET.exec(raw);
    const numbered = bullet ? null : NUMBERED.exec(raw);
    if (bullet || numbered) {
      const tag = bullet ? 'ul' : 'ol';
      flushParagraph();
      if (!list || list.tag !== tag) {
        flushList();
        list = { tag, items: [], start: numbered ? Number(numbered[1]) : 1 };
      }
      list.items.push(escapeHtml(bullet ? bullet[1] : numbered[2]));
    } else if (line.trim() === '') {
      flushParagraph();
      flushList();
    } else {
      flushList();
      paragraph.push(line.trim());
    }
  }
  flushParagraph();
  flushList();
  return html.join('');
}
