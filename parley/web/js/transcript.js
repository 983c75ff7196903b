/**
 * The transcript view: builds the DOM for bubbles, the ghost (partial transcript) bubble,
 * tool activity rows, approval cards and carousels, and keeps the view scrolled to the
 * newest item while the reader is at the bottom.
 *
 * Following the bottom is a state, not a measurement: `following` turns off only when the
 * reader scrolls up, and on again when they come back near the bottom. (Measuring at each
 * append failed while a smooth scroll was still on its way down: a tall menu carousel
 * followed by a reply left the reply hidden behind the composer.) A ResizeObserver keeps
 * the bottom in view when content grows later — fonts, images, streamed text.
 *
 * Server text only ever reaches the DOM through `textContent` or `renderMarkdown`
 * (which escapes everything), never as raw HTML.
 */

import { renderMarkdown } from './render.js';
import { argumentsInWords, decisionInWords, toolActivity, toolName } from './describe.js';

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function definitionList(pairs) {
  const list = el('dl', 'card-args');
  for (const [label, value] of pairs) {
    const pair = el('div');
    pair.append(el('dt', '', label), el('dd', '', value));
    list.append(pair);
  }
  return list;
}

function actionButton(verb, style, tool) {
  const button = el('button', `btn ${style}`, verb);
  button.type = 'button';
  button.dataset.action = verb.toLowerCase();
  button.setAttribute('aria-label', `${verb} ${toolName(tool).toLowerCase()}`);
  return button;
}

const SAFE_IMAGE = /^(https?:\/\/|\/(?!\/)|data:image\/(png|jpe?g|gif|webp);)/i;

export class Transcript {
  constructor(scroller, list) {
    this.scroller = scroller;
    this.list = list;
    this.ghost = null;
    this.following = true;
    this.lastTop = scroller.scrollTop;
    scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => {
        if (this.following) this.scrollToBottom();
      }).observe(list);
    }
  }

  onScroll() {
    const top = this.scroller.scrollTop;
    if (this.nearBottom()) this.following = true;
    else if (top < this.lastTop - 2) this.following = false; // the reader scrolled up
    this.lastTop = top;
  }

  clear() {
    this.list.replaceChildren();
    this.ghost = null;
  }

  nearBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < 160;
  }

  append(node, force = false) {
    const stick = force || this.following || this.nearBottom();
    if (this.ghost && this.ghost !== node) this.list.insertBefore(node, this.ghost);
    else this.list.append(node);
    if (stick) this.scrollToBottom();
    return node;
  }

  scrollToBottom() {
    this.following = true;
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Keep the bottom in view while a node grows (streaming text). */
  grew(stick) {
    if (stick) this.scrollToBottom();
  }

  addUser(text, channel = 'chat') {
    const row = el('div', 'msg msg-user');
    row.dataset.channel = channel;
    const bubble = el('div', 'bubble', text);
    row.append(bubble);
    if (channel === 'voice') row.append(el('span', 'msg-meta', 'spoken'));
    this.append(row, true);
    return {
      el: row,
      fail: (reason) => {
        row.classList.add('failed');
        row.append(el('span', 'msg-meta msg-failed', `Not sent — ${reason}`));
      },
    };
  }

  addAssistant(channel = 'chat') {
    const row = el('div', 'msg msg-assistant streaming');
    row.dataset.channel = channel;
    const bubble = el('div', 'bubble md');
    row.append(bubble);
    this.append(row);
    let text = '';
    let frame = 0;
    const paint = () => {
      frame = 0;
      const stick = this.following || this.nearBottom();
      bubble.innerHTML = renderMarkdown(text) || '<p class="typing" aria-hidden="true"></p>';
      this.grew(stick);
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(paint);
    };
    paint();
    return {
      el: row,
      get text() {
        return text;
      },
      append(more) {
        text += more;
        schedule();
      },
      setText(full) {
        text = full;
        schedule();
      },
      finish({ interrupted = false } = {}) {
        if (frame) cancelAnimationFrame(frame);
        paint();
        row.classList.remove('streaming');
        if (!text.trim()) {
          row.remove(); // nothing was said (tool calls only, or cut off before a word)
          return;
        }
        if (interrupted && !row.querySelector('.msg-interrupted')) {
          row.classList.add('interrupted');
          row.append(el('span', 'msg-meta msg-interrupted', 'interrupted'));
        }
      },
    };
  }

  /** The partial transcript while the user speaks; `commitGhost` makes it a user bubble. */
  showGhost(text) {
    if (!this.ghost) {
      this.ghost = el('div', 'msg msg-user ghost');
      this.ghost.append(el('div', 'bubble'));
      this.ghost.setAttribute('aria-hidden', 'true');
      this.list.append(this.ghost);
    }
    this.ghost.firstChild.textContent = text || '…';
    this.scrollToBottom();
  }

  clearGhost() {
    if (this.ghost) this.ghost.remove();
    this.ghost = null;
  }

  commitGhost(text) {
    this.clearGhost();
    return this.addUser(text, 'voice');
  }

  addTool(name, status = 'running') {
    const row = el('div', 'activity');
    const text = el('span', 'activity-text');
    row.append(el('span', 'activity-icon'), text);
    const setStatus = (next) => {
      row.dataset.status = next;
      text.textContent = toolActivity(name, next);
    };
    setStatus(status);
    this.append(row);
    return { el: row, setStatus };
  }

  addNote(text, tone = 'info') {
    const row = el('div', 'note', text);
    row.dataset.tone = tone;
    return this.append(row, true);
  }

  /** An approval card; `onDecide(approved)` is called on a click. */
  addApproval({ toolCallId, name, arguments: args, prompt, status, decidedBy, toolStatus }, onDecide) {
    const card = el('article', 'card approval');
    card.dataset.toolCallId = toolCallId;
    card.tabIndex = -1; // focus lands here when its buttons go away
    const titleId = `approval-${toolCallId}`.replace(/[^\w-]/g, '_');
    card.setAttribute('aria-labelledby', titleId);
    const head = el('header', 'card-head');
    const kicker = el('span', 'card-kicker', 'Needs your approval');
    head.append(kicker);
    const title = el('h3', 'card-title', toolName(name));
    title.id = titleId;
    head.append(title);
    card.append(head);
    if (prompt) card.append(el('p', 'card-prompt', prompt));
    const pairs = argumentsInWords(args);
    if (pairs.length) card.append(definitionList(pairs));
    const approve = actionButton('Approve', 'btn-primary', name);
    const deny = actionButton('Deny', 'btn-secondary', name);
    const actions = el('div', 'card-actions');
    actions.append(approve, deny);
    const badge = el('p', 'badge');
    badge.setAttribute('role', 'status');
    const outcome = el('span', 'card-outcome');
    card.append(actions, badge, outcome);

    const view = {
      el: card,
      resolve(next, by) {
        card.dataset.status = next;
        badge.textContent = decisionInWords(next, by);
        const done = next !== 'pending';
        if (done && card.contains(document.activeElement)) card.focus();
        kicker.textContent = done ? 'Approval' : 'Needs your approval';
        actions.hidden = done;
        approve.disabled = deny.disabled = done;
        card.classList.remove('busy');
      },
      /** The approved tool's own progress: running, ok, error. */
      toolStatus(next) {
        card.dataset.tool = next;
        outcome.textContent = next === 'denied' ? '' : toolActivity(name, next);
      },
      busy(on) {
        if (on && card.contains(document.activeElement)) card.focus();
        card.classList.toggle('busy', on);
        approve.disabled = deny.disabled = on;
        if (on) badge.textContent = 'Sending your decision…';
      },
    };
    approve.addEventListener('click', () => onDecide(true));
    deny.addEventListener('click', () => onDecide(false));
    view.resolve(status || 'pending', decidedBy);
    if ((status || 'pending') === 'pending') badge.textContent = '';
    if (toolStatus) view.toolStatus(toolStatus);
    this.append(card, true);
    return view;
  }

  /** Carousel cards; `onPick(item)` is called when one is chosen. */
  addCarousel(op, onPick) {
    const wrap = el('div', 'carousel');
    const list = el('ul', 'carousel-track');
    list.setAttribute('aria-label', op.title || 'Options');
    for (const item of Array.isArray(op.items) ? op.items : []) {
      const li = el('li');
      const card = el('button', 'carousel-card');
      card.type = 'button';
      const image = typeof item.image === 'string' && SAFE_IMAGE.test(item.image);
      card.append(cardMedia(item, image));
      const body = el('div', 'carousel-body');
      body.append(el('span', 'carousel-title', item.title || ''));
      if (item.subtitle) body.append(el('span', 'carousel-subtitle', item.subtitle));
      if (item.description) body.append(el('span', 'carousel-desc', item.description));
      if (item.price !== undefined && item.price !== null && item.price !== '') {
        body.append(el('span', 'carousel-price', String(item.price)));
      }
      card.append(body);
      card.addEventListener('click', () => onPick(item));
      li.append(card);
      list.append(li);
    }
    wrap.append(list, ...scrollButtons(list));
    const node = this.append(wrap, true);
    watchOverflow(wrap, list);
    return node;
  }
}

/** A real image, or a designed placeholder: a plate in a colour of its own per dish. */
function cardMedia(item, hasImage) {
  const media = el('div', 'carousel-media');
  if (hasImage) {
    const img = el('img');
    img.src = item.image;
    img.alt = '';
    img.loading = 'lazy';
    img.addEventListener('error', () => {
      img.remove();
      media.replaceWith(cardMedia(item, false));
    });
    media.append(img);
    return media;
  }
  media.classList.add('placeholder');
  const title = String(item.title || '?').trim();
  let hash = 0;
  for (const ch of title) hash = (hash * 31 + ch.codePointAt(0)) % 360;
  media.style.setProperty('--dish-hue', String(hash));
  media.setAttribute('aria-hidden', 'true');
  media.append(el('span', 'plate'), el('span', 'plate-initial', title.charAt(0).toUpperCase()));
  return media;
}

function scrollButtons(list) {
  const make = (dir, label, glyph) => {
    const button = el('button', `carousel-nav carousel-${dir}`, glyph);
    button.type = 'button';
    button.setAttribute('aria-label', label);
    button.addEventListener('click', () => {
      const step = Math.max(list.clientWidth * 0.8, 160) * (dir === 'next' ? 1 : -1);
      list.scrollBy({ left: step, behavior: 'smooth' });
    });
    return button;
  };
  return [make('prev', 'Scroll back', '‹'), make('next', 'More options', '›')];
}

/** Mark the carousel's ends: `data-more-left` / `data-more-right` show fades and arrows. */
function watchOverflow(wrap, list) {
  const update = () => {
    const max = list.scrollWidth - list.clientWidth;
    wrap.dataset.moreLeft = String(list.scrollLeft > 4);
    wrap.dataset.moreRight = String(max - list.scrollLeft > 4);
  };
  list.addEventListener('scroll', update, { passive: true });
  if (typeof ResizeObserver === 'function') new ResizeObserver(update).observe(list);
  update();
}
