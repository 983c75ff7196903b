/**
 * The operator console (`/operator`): sign in with the operator key, see waiting
 * transfers with their briefing, Accept (voice: mic and playback with the main page's
 * audio code; or chat only) or Decline, and approve or deny pending tool calls of the
 * transferred sessions (`decided_by: operator`).
 *
 * Accepting is joining: a `/v1/voice` socket whose start frame carries the transfer id
 * and the operator key. The first Accept wins; a late one hears `transfer_taken`.
 */

import { AudioEngine } from './audio.js';

const POLL_MS = 2000;
const KEY_STORE = 'parley.operatorKey';

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function toast(text, tone = 'error') {
  const node = el('div', 'toast', text);
  node.dataset.tone = tone;
  $('toasts').append(node);
  setTimeout(() => node.remove(), 6000);
}

class Console {
  constructor() {
    this.key = sessionStorage.getItem(KEY_STORE) || '';
    this.timer = 0;
    this.call = null; // {socket, audio, transferId}
    this.sessions = new Set();
    $('sign-in').addEventListener('submit', (event) => {
      event.preventDefault();
      this.signIn($('key').value.trim());
    });
    $('sign-out').addEventListener('click', () => this.signOut());
    $('call-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.sendText();
    });
    $('call-input').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        this.sendText();
      }
    });
    $('hang-up').addEventListener('click', () => this.hangUp());
    if (this.key) this.signIn(this.key);
  }

  async api(path, options = {}) {
    const resp = await fetch(path, {
      ...options,
      headers: { Authorization: `Bearer ${this.key}`, 'Content-Type': 'application/json' },
    });
    let body = null;
    try {
      body = await resp.json();
    } catch {
      body = null;
    }
    if (!resp.ok) {
      const error = new Error(body?.error?.message || body?.message || `HTTP ${resp.status}`);
      error.status = resp.status;
      throw error;
    }
    return body;
  }

  async signIn(key) {
    this.key = key;
    try {
      await this.api('/v1/operator/transfers');
    } catch (err) {
      $('sign-in-error').textContent =
        err.status === 401 || err.status === 403 ? 'That is not the operator key.' : err.message;
      this.key = '';
      return;
    }
    sessionStorage.setItem(KEY_STORE, key);
    $('sign-in').hidden = true;
    $('queue').hidden = false;
    $('sign-out').hidden = false;
    $('who').textContent = 'Signed in';
    this.poll();
  }

  signOut() {
    sessionStorage.removeItem(KEY_STORE);
    clearTimeout(this.timer);
    this.hangUp();
    this.key = '';
    $('sign-in').hidden = false;
    $('queue').hidden = true;
    $('sign-out').hidden = true;
    $('who').textContent = 'Signed out';
  }

  async poll() {
    clearTimeout(this.timer);
    try {
      const { transfers } = await this.api('/v1/operator/transfers');
      this.renderTransfers(transfers);
      await this.renderApprovals(transfers);
    } catch (err) {
      if (err.status === 401 || err.status === 403) return this.signOut();
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  renderTransfers(transfers) {
    const list = $('transfers');
    list.replaceChildren();
    $('queue-empty').hidden = transfers.length > 0;
    for (const t of transfers) {
      this.sessions.add(t.session_id);
      const card = el('article', 'card transfer');
      card.dataset.transferId = t.transfer_id;
      card.dataset.status = t.status;
      card.append(
        el('p', 'card-kicker', `${t.caller_channel || 'chat'} caller · ${t.status} · ${Math.round(t.age_s)} s`),
        el('h3', 'card-title', t.reason || 'The caller asked for a person'),
        el('p', 'card-prompt', t.briefing || ''),
      );
      const actions = el('div', 'card-actions');
      if (t.status === 'dialing') {
        const voice = el('button', 'btn btn-primary', 'Accept');
        voice.addEventListener('click', () => this.accept(t, true));
        const chat = el('button', 'btn btn-secondary', 'Accept as chat');
        chat.addEventListener('click', () => this.accept(t, false));
        const decline = el('button', 'btn btn-ghost', 'Decline');
        decline.addEventListener('click', () => this.decline(t));
        actions.append(voice, chat, decline);
      } else {
        actions.append(el('span', 'pill', t.status === 'joined' ? 'taken' : t.status));
      }
      card.append(actions);
      list.append(card);
    }
  }

  async renderApprovals() {
    const list = $('approvals');
    const cards = [];
    for (const sessionId of this.sessions) {
      let session;
      try {
        session = await this.api(`/v1/sessions/${sessionId}`);
      } catch {
        this.sessions.delete(sessionId);
        continue;
      }
      if (session.status !== 'active') {
        this.sessions.delete(sessionId);
        continue;
      }
      for (const a of session.pending_approvals || []) {
        const card = el('article', 'card approval');
        card.append(el('p', 'card-kicker', `session ${sessionId}`), el('p', 'card-prompt', a.prompt));
        const actions = el('div', 'card-actions');
        for (const [label, approved] of [['Approve', true], ['Deny', false]]) {
          const button = el('button', approved ? 'btn btn-primary' : 'btn btn-ghost', label);
          button.addEventListener('click', () => this.decide(sessionId, a.tool_call_id, approved));
          actions.append(button);
        }
        card.append(actions);
        cards.push(card);
      }
    }
    list.replaceChildren(...cards);
    $('approvals-empty').hidden = cards.length > 0;
  }

  async decide(sessionId, toolCallId, approved) {
    try {
      const resp = await fetch(`/v1/sessions/${sessionId}/approvals/${toolCallId}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ approved }),
      });
      await resp.text();
      toast(approved ? 'Approved.' : 'Denied.', 'info');
    } catch (err) {
      toast(err.message);
    }
    this.poll();
  }

  async decline(t) {
    try {
      await this.api(`/v1/operator/transfers/${t.transfer_id}/decline`, { method: 'POST' });
      toast('Declined: the assistant takes the caller back.', 'info');
    } catch (err) {
      toast(err.message);
    }
    this.poll();
  }

  log(text, tone = 'info') {
    const row = el('div', 'note', text);
    row.dataset.tone = tone;
    $('call-log').append(row);
    row.scrollIntoView({ block: 'end' });
  }

  async accept(t, withVoice) {
    if (this.call) return toast('You are already with a caller.');
    let audio = null;
    if (withVoice) {
      audio = new AudioEngine({
        onFrame: (pcm) => this.call?.socket.readyState === 1 && this.call.socket.send(pcm),
        onPlayer: () => {},
      });
      try {
        await audio.open();
        audio.setOutputRate(16000);
      } catch (err) {
        toast(err.message);
        audio = null;
      }
    }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/v1/voice`);
    socket.binaryType = 'arraybuffer';
    this.call = { socket, audio, transferId: t.transfer_id };
    $('call').hidden = false;
    $('call-log').replaceChildren();
    $('call-status').textContent = 'connecting';
    $('call-briefing').textContent = t.briefing || '';
    this.showHistory(t.session_id);
    socket.onopen = () =>
      socket.send(
        JSON.stringify({
          type: 'start',
          transfer_id: t.transfer_id,
          operator_key: this.key,
          sample_rate: 16000,
          output_sample_rate: 16000,
        }),
      );
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = () => this.ended();
  }

  /** The conversation so far (the operator key reads any session's history). */
  async showHistory(sessionId) {
    let messages = [];
    try {
      messages = await this.api(`/v1/sessions/${sessionId}/messages`);
    } catch {
      return;
    }
    const who = { user: 'Caller', assistant: 'Assistant', human_agent: 'Team' };
    for (const m of messages) {
      if (m.text && who[m.role]) this.log(`${who[m.role]}: ${m.text}`, `history-${m.role}`);
    }
  }

  async receive(data) {
    if (typeof data !== 'string') {
      this.call?.audio?.play(data, 1);
      return;
    }
    const frame = JSON.parse(data);
    if (frame.type === 'ready' && this.call?.audio) {
      try {
        await this.call.audio.startMic();
      } catch (err) {
        toast(err.message);
      }
    } else if (frame.type === 'briefing') {
      $('call-briefing').textContent = frame.text;
    } else if (frame.type === 'transfer') {
      $('call-status').textContent = frame.status;
      if (frame.status === 'joined') this.poll();
      this.log(`Transfer ${frame.status}${frame.status === 'failed' ? ` (${frame.reason})` : ''}.`);
    } else if (frame.type === 'caller_message') {
      this.log(`Caller: ${frame.text}`, 'caller');
    } else if (frame.type === 'error') {
      toast(frame.code === 'transfer_taken' ? 'Another operator took this transfer.' : frame.message);
    }
  }

  sendText() {
    const input = $('call-input');
    const text = input.value.trim();
    if (!text || !this.call || this.call.socket.readyState !== 1) return;
    this.call.socket.send(JSON.stringify({ type: 'text', text }));
    this.log(`You: ${text}`, 'human');
    input.value = '';
  }

  hangUp() {
    if (!this.call) return;
    const { socket } = this.call;
    if (socket.readyState === 1) socket.send(JSON.stringify({ type: 'end' }));
    socket.close();
  }

  ended() {
    const call = this.call;
    this.call = null;
    call?.audio?.close();
    $('call-status').textContent = 'over';
    this.log('The call is over.');
    this.poll();
  }
}

window.parleyConsole = new Console();
