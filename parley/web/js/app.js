/**
 * Parley's page: one conversation by chat and voice.
 *
 * The App owns the session (create, restore after reload, end, start over) and routes
 * user input to whichever channel is live: HTTP+SSE turns while in chat, JSON frames on
 * the voice WebSocket while voice is connected. Both channels' events go through one
 * TurnPresenter, so the transcript is the same whichever way the user talks.
 * Test hooks live on `window.parley` (see `hooks()` at the bottom).
 */

import { ApiClient } from './api.js';
import { bindControls } from './controls.js';
import { useToolLabels } from './describe.js';
import { endedInWords, explain, isAccessLost, isSessionGone } from './errors.js';
import { SessionMemory } from './memory.js';
import { Notices } from './notices.js';
import { readEventStream } from './sse.js';
import { Transcript } from './transcript.js';
import { TurnPresenter } from './turns.js';
import { VoiceMode } from './voice-mode.js';

const EVENT_LOG_MAX = 500;

class App {
  constructor(dom, agent) {
    this.dom = dom;
    this.agent = agent;
    this.api = new ApiClient();
    this.memory = new SessionMemory(agent);
    this.notices = new Notices(dom.toasts, dom.banners);
    this.transcript = new Transcript(dom.scroller, dom.items);
    this.presenter = new TurnPresenter(this.transcript, {
      decide: (id, approved) => this.decide(id, approved),
      pick: (item) => this.pick(item),
      toast: (text, kind, code) => this.notices.toast(text, kind, code),
      transfer: (e) => this.transferStep(e),
    });
    this.voice = new VoiceMode({
      orb: dom.orb,
      label: dom.orbLabel,
      session: () => this.session,
      onFrame: (frame) => this.voiceFrame(frame),
      onReady: (frame) => this.voiceReady(frame),
      onChannel: (channel) => this.setChannel(channel),
      onHandsFree: (on) => this.showHandsFree(on),
      banner: (text) => (text ? this.notices.banner('voice', text, 'warn') : this.notices.clearBanner('voice')),
      toast: (text, kind, code) => this.notices.toast(text, kind, code),
    });
    this.session = null;
    this.channel = 'chat';
    this.busy = false;
    this.ended = false;
    this.turnAbort = null;
    this.eventLog = [];
    this.displayName = null;
    this.agentReady = Promise.resolve();
  }

  // --- session life ---------------------------------------------------------------------

  async boot() {
    this.agentReady = this.loadAgent(); // a new conversation does not wait for it
    const saved = this.memory.load();
    if (saved && (await this.restore(saved))) return;
    await this.start();
  }

  /** Continue a saved session; false when it is gone and a new one should start. */
  async restore(saved) {
    this.useSession(saved);
    try {
      const [info, messages] = await Promise.all([
        this.api.getSession(saved.session_id),
        this.api.getMessages(saved.session_id),
        this.agentReady, // tool labels before the history's cards are drawn
      ]);
      this.showAgent(info.agent || saved.agent);
      this.presenter.showHistory(messages);
      if (info.status === 'ended') this.sessionEnded(info.end_reason);
      else if (info.expires_at) this.watchSession();
      return true;
    } catch (err) {
      if (isAccessLost(err)) {
        this.memory.forget();
        this.notices.toast('Your previous conversation is no longer available — starting a new one.', 'info', err.code);
        return false;
      }
      this.failedToLoad(err);
      return true;
    }
  }

  async start() {
    let created;
    try {
      created = await this.api.createSession(this.agent);
    } catch (err) {
      this.failedToLoad(err);
      return;
    }
    this.useSession(created);
    if (created.expires_at) this.watchSession();
    this.memory.save(created);
    this.showAgent(created.agent);
    this.dom.mic.hidden = created.voice_enabled === false;
    if (created.greeting_mode === 'llm') {
      await this.runTurn((signal) => this.api.initialTurn(created.session_id, signal));
      return;
    }
    try {
      const messages = await this.api.getMessages(created.session_id);
      this.presenter.showHistory(messages);
      if (!messages.length && created.greeting) this.showGreeting(created.greeting);
    } catch (err) {
      this.report(err);
      if (created.greeting) this.showGreeting(created.greeting);
    }
  }

  useSession(session) {
    this.sessionWatch?.abort();
    this.session = { ...session };
    this.api.setToken(session.session_token);
    this.ended = false;
    this.notices.clearBanners();
    this.setComposerEnabled(true);
  }

  showGreeting(text) {
    const bubble = this.transcript.addAssistant();
    bubble.setText(text);
    bubble.finish();
  }

  /** The agent's display name and tool labels; the page works without them. */
  async loadAgent() {
    try {
      const agents = await this.api.json('GET', '/v1/agents');
      const found = (agents || []).find((a) => a.name === this.agent);
      if (!found) return;
      this.displayName = found.display_name || null;
      useToolLabels(found.tool_labels);
      this.showAgent(this.agent);
    } catch {
      // names fall back to the agent's and the tools' own
    }
  }

  showAgent(agent) {
    if (this.displayName) this.dom.agentName.textContent = this.displayName;
    else if (agent) this.dom.agentName.textContent = `${agent} agent`;
  }

  failedToLoad(err) {
    this.report(err);
    this.notices.banner('load', 'The conversation could not be loaded.', 'danger', {
      label: 'Try again',
      run: () => location.reload(),
    });
  }

  async newConversation() {
    const old = this.session;
    this.turnAbort?.abort();
    this.sessionWatch?.abort();
    this.voice.leave();
    this.memory.forget();
    this.presenter.reset();
    this.notices.clearBanners();
    if (old && !this.ended) {
      this.api.endSession(old.session_id).catch((err) => {
        if (!isSessionGone(err)) console.warn('[parley] ending the old session failed', err);
      });
    }
    this.session = null;
    await this.start();
    this.dom.input.focus();
  }

  sessionEnded(reason, detail = '') {
    this.ended = true;
    if (this.voice.active) this.voice.leave();
    this.setComposerEnabled(false);
    this.notices.clearBanner('time');
    this.notices.banner('ended', endedInWords(reason, detail), 'danger', {
      label: 'New conversation',
      run: () => this.newConversation(),
    });
  }

  // --- input --------------------------------------------------------------------------

  async sendText(text) {
    if (!text.trim() || !this.session) return false;
    if (this.voice.active) {
      if (!this.voice.send({ type: 'text', text })) return false;
      this.transcript.addUser(text);
      return true;
    }
    const bubble = this.transcript.addUser(text);
    const id = this.session.session_id;
    await this.runTurn((signal) => this.api.sendMessage(id, { text }, signal), { bubble, text });
    return true; // sent; a refusal is shown on the bubble and the text put back by runTurn
  }

  pick(item) {
    const msg = item.msg || item.title || '';
    const display = item.display || item.title || msg;
    if (!msg || !this.session) return;
    if (this.voice.active) {
      if (this.voice.send({ type: 'ui_action', msg, display })) this.transcript.addUser(display);
      return;
    }
    const bubble = this.transcript.addUser(display);
    const id = this.session.session_id;
    this.runTurn((signal) => this.api.sendMessage(id, { ui_action: { msg, display } }, signal), { bubble });
  }

  decide(toolCallId, approved) {
    if (this.voice.active) {
      if (!this.voice.send({ type: 'approval', tool_call_id: toolCallId, approved })) {
        this.presenter.approvals.get(toolCallId)?.busy(false);
      }
      return;
    }
    const id = this.session.session_id;
    this.runTurn((signal) => this.api.decideApproval(id, toolCallId, approved, signal)).then((ok) => {
      const card = this.presenter.approvals.get(toolCallId);
      if (!ok && card?.el.dataset.status === 'pending') card.busy(false);
    });
  }

  /**
   * Run one HTTP turn: stream its events into the transcript. True if it completed.
   * `sent` is the user's bubble (and text) to mark "not sent" if the server refused it.
   */
  async runTurn(open, sent = null) {
    this.setBusy(true);
    this.turnAbort = new AbortController();
    let finished = false;
    let sessionStatus = 'active';
    try {
      const events = await open(this.turnAbort.signal);
      for await (const event of events) {
        this.record(event);
        this.presenter.apply(event);
        if (event.type === 'turn_end') {
          finished = true;
          sessionStatus = event.session_status || 'active';
        }
      }
      if (!finished) {
        this.presenter.finishBubble();
        this.notices.toast('The reply was cut off before it finished.', 'error', 'stream_cut');
      }
    } catch (err) {
      this.presenter.finishBubble();
      if (err?.name === 'AbortError') return false;
      if (sent) {
        sent.bubble.fail(explain(err).code.replace(/_/g, ' '));
        if (sent.text && !this.dom.input.value) this.dom.input.value = sent.text;
      }
      this.report(err);
      if (isSessionGone(err)) this.sessionEnded('', '');
    } finally {
      this.setBusy(false);
    }
    if (sessionStatus === 'ended') this.sessionEnded('', '');
    return finished;
  }

  // --- a transfer to a person (chat) -------------------------------------------------

  /** A chat caller's transfer: follow the session's events (its steps, the person's
   * words, the assistant coming back) until it is over. Voice gets them on its socket. */
  transferStep(e) {
    if (this.channel !== 'chat' || this.transferWatch) return;
    if (!['requested', 'dialing', 'briefing', 'joined'].includes(e.status)) return;
    this.transferWatch = new AbortController();
    this.watchTransfer(this.transferWatch.signal).finally(() => {
      this.transferWatch = null;
    });
  }

  async watchTransfer(signal) {
    const path = `/v1/sessions/${encodeURIComponent(this.session.session_id)}/events`;
    let over = null;
    try {
      const response = await this.api.request('GET', path, undefined, 'text/event-stream', signal);
      for await (const { event, data } of readEventStream(response.body)) {
        const frame = JSON.parse(data);
        const inner = event === 'relay' ? frame.event : frame;
        if (inner?.type === 'session_ended') break;
        if (!inner || !['transfer', 'human_message', 'assistant_message'].includes(inner.type)) continue;
        this.record(inner);
        this.presenter.apply(inner);
        if (inner.type === 'transfer' && ['ended', 'failed', 'cancelled'].includes(inner.status)) {
          over = inner.status;
          if (over === 'cancelled') break;
        } else if (over && inner.type === 'assistant_message') {
          break; // the assistant is back
        }
      }
    } catch (err) {
      if (err?.name !== 'AbortError') console.warn('[parley] transfer events', err);
    }
  }

  // --- session-level events (a session with a time limit) -----------------------------

  /** Follow `/v1/sessions/{id}/events` so a chat page hears the time-limit `warning`
   * and the session's end without a socket or polling (voice hears both on its socket
   * too; the banners are keyed, so twice is once). A dropped stream is reopened. */
  watchSession() {
    const watch = new AbortController();
    this.sessionWatch = watch;
    const id = this.session.session_id;
    const path = `/v1/sessions/${encodeURIComponent(id)}/events`;
    const follow = async () => {
      while (!watch.signal.aborted && !this.ended) {
        try {
          const response = await this.api.request('GET', path, undefined, 'text/event-stream', watch.signal);
          for await (const { event, data } of readEventStream(response.body)) {
            if (this.session?.session_id !== id) return; // a new conversation began
            if (event === 'warning' || event === 'session_ended') this.limitFrame(JSON.parse(data));
          }
        } catch (err) {
          if (err?.name === 'AbortError' || isSessionGone(err) || isAccessLost(err)) return;
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    };
    follow();
  }

  /** A `warning` or `session_ended` frame (from the voice socket or the event stream). */
  limitFrame(frame) {
    if (frame.type === 'warning') {
      const secs = Math.max(0, Math.round(frame.seconds_left || 0));
      this.notices.banner('time', `About ${secs} seconds left in this conversation.`, 'warn');
    } else if (frame.type === 'session_ended' && !this.ended) {
      this.sessionEnded(frame.reason, frame.detail);
    }
  }

  report(err) {
    const { text, code } = explain(err);
    this.notices.toast(text, 'error', code);
  }

  // --- voice --------------------------------------------------------------------------

  voiceReady(frame) {
    if (frame.session_id && frame.session_id !== this.session.session_id) {
      console.warn('[parley] voice attached to another session', frame.session_id);
    }
    if (frame.session_token) this.session.session_token = frame.session_token;
    if (frame.resume_token) this.session.resume_token = frame.resume_token;
    this.api.setToken(this.session.session_token);
    this.memory.save(this.session);
  }

  voiceFrame(frame) {
    this.record(frame);
    if (frame.type === 'warning' || frame.type === 'session_ended') {
      this.limitFrame(frame);
    } else if (frame.type === 'go_away') {
      this.notices.toast('The server is restarting; voice will reconnect.', 'info', 'go_away');
    }
    this.presenter.channel = 'voice';
    this.presenter.apply(frame);
    if (frame.type === 'turn_end' && frame.session_status === 'ended') this.sessionEnded('', '');
  }

  // --- view state ---------------------------------------------------------------------

  setChannel(channel) {
    this.channel = channel;
    this.presenter.channel = channel;
    document.body.dataset.channel = channel;
    const words = { voice: 'Voice', connecting: 'Voice · connecting', chat: 'Chat' };
    this.dom.channelPill.textContent = words[channel] || channel;
    this.dom.channelPill.dataset.channel = channel;
    this.dom.voicePanel.hidden = channel === 'chat';
  }

  showHandsFree(on) {
    this.dom.mic.setAttribute('aria-pressed', String(on));
    this.dom.voiceHint.textContent = on
      ? 'Listening hands-free · click the mic to stop · Esc stops the agent'
      : 'Click the mic for hands-free · hold it (or Space) to talk · Esc stops the agent';
  }

  setBusy(busy) {
    this.busy = busy;
    document.body.classList.toggle('busy', busy);
    this.dom.send.disabled = busy || this.ended;
  }

  setComposerEnabled(enabled) {
    this.dom.input.disabled = !enabled;
    this.dom.send.disabled = !enabled || this.busy;
    this.dom.mic.disabled = !enabled;
  }

  record(event) {
    this.eventLog.push(event);
    if (this.eventLog.length > EVENT_LOG_MAX) this.eventLog.shift();
  }

  /** Small, read-only test hooks on `window.parley`. */
  hooks() {
    return Object.freeze({
      snapshot: () => ({
        sessionId: this.session?.session_id ?? null,
        channel: this.channel,
        busy: this.busy,
        ended: this.ended,
        orb: this.voice.model.state,
        handsFree: this.voice.model.handsFree,
        pttHeld: this.voice.model.pttHeld,
        ...this.voice.stats,
      }),
      events: () => this.eventLog.map((event) => ({ ...event })),
      toasts: () => this.notices.history.map((toast) => ({ ...toast })),
    });
  }
}

function domRefs() {
  const $ = (id) => document.getElementById(id);
  return {
    scroller: $('transcript'),
    items: $('transcript-items'),
    toasts: $('toasts'),
    banners: $('banners'),
    input: $('composer-input'),
    form: $('composer'),
    send: $('send'),
    mic: $('mic'),
    orb: $('orb'),
    orbLabel: $('orb-label'),
    voiceHint: $('voice-hint'),
    voicePanel: $('voice-panel'),
    leaveVoice: $('leave-voice'),
    channelPill: $('channel-pill'),
    agentName: $('agent-name'),
    newConversation: $('new-conversation'),
  };
}

const agent = new URLSearchParams(location.search).get('agent') || 'demo';
const app = new App(domRefs(), agent);
window.parley = app.hooks();
bindControls(app);
app.boot().catch((err) => app.report(err));
window.addEventListener('unhandledrejection', (event) => app.report(event.reason));
