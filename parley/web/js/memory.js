/**
 * Remembers the current session (id + tokens) per agent in localStorage so a reload
 * continues the same conversation. Storage failures (private mode, quota) are reported
 * to the console and the page keeps working without persistence.
 */

const PREFIX = 'parley.session.';

export class SessionMemory {
  constructor(agent) {
    this.key = PREFIX + agent;
  }

  load() {
    try {
      const raw = localStorage.getItem(this.key);
      if (!raw) return null;
      const saved = JSON.parse(raw);
      return saved && saved.session_id && saved.session_token ? saved : null;
    } catch (err) {
      console.warn('[parley] could not read the saved session', err);
      return null;
    }
  }

  save(session) {
    const { session_id, session_token, resume_token, agent } = session;
    try {
      localStorage.setItem(this.key, JSON.stringify({ session_id, session_token, resume_token, agent }));
    } catch (err) {
      console.warn('[parley] could not save the session; a reload will start over', err);
    }
  }

  forget() {
    try {
      localStorage.removeItem(this.key);
    } catch (err) {
      console.warn('[parley] could not clear the saved session', err);
    }
  }
}
