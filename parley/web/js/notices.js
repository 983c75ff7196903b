/**
 * Toasts (transient errors and notices, announced with role=alert) and banners
 * (lasting conditions: time-limit warning, session ended, reconnecting).
 * Every toast is also logged to the console so nothing is silently swallowed.
 */

const TOAST_MS = 7000;

export class Notices {
  constructor(toastRoot, bannerRoot) {
    this.toastRoot = toastRoot;
    this.bannerRoot = bannerRoot;
    this.banners = new Map();
    this.history = [];
  }

  /** Show a toast; `code` is kept as data-code (tests and styling). */
  toast(text, kind = 'error', code = '') {
    const log = kind === 'error' ? console.error : console.info;
    log(`[parley] ${code ? `${code}: ` : ''}${text}`);
    this.history.push({ text, kind, code });
    if (this.history.length > 50) this.history.shift();
    const toast = document.createElement('div');
    toast.className = 'toast';
    toast.dataset.kind = kind;
    if (code) toast.dataset.code = code;
    toast.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    const message = document.createElement('p');
    message.textContent = text;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'toast-close';
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '×';
    close.addEventListener('click', () => toast.remove());
    toast.append(message, close);
    this.toastRoot.append(toast);
    setTimeout(() => toast.remove(), TOAST_MS);
    while (this.toastRoot.children.length > 4) this.toastRoot.firstElementChild.remove();
    return toast;
  }

  /** Show or replace the banner with this key; `action` is {label, run} or null. */
  banner(key, text, tone = 'info', action = null) {
    this.clearBanner(key);
    const banner = document.createElement('div');
    banner.className = 'banner';
    banner.dataset.tone = tone;
    banner.dataset.key = key;
    banner.setAttribute('role', tone === 'danger' ? 'alert' : 'status');
    const message = document.createElement('p');
    message.textContent = text;
    banner.append(message);
    if (action) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'btn btn-small';
      button.textContent = action.label;
      button.addEventListener('click', action.run);
      banner.append(button);
    }
    this.bannerRoot.append(banner);
    this.banners.set(key, banner);
    return banner;
  }

  clearBanner(key) {
    this.banners.get(key)?.remove();
    this.banners.delete(key);
  }

  clearBanners() {
    for (const key of [...this.banners.keys()]) this.clearBanner(key);
  }
}
