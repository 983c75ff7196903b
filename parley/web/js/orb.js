/**
 * What the voice orb shows. `OrbModel` is a small pure state machine fed with voice
 * events and playback/mic facts; `OrbView` paints its state and the live level.
 *
 * States: off, connecting, reconnecting, ready (push-to-talk, idle), listening
 * (hands-free), user_speaking, thinking, tool (running <name>), approval (waiting for a
 * decision), speaking (agent audio playing), paused (the agent's speech is held because
 * the caller made a sound over it: `playback_paused`; `playback_resumed` returns to
 * speaking, `interrupted` to the caller's turn).
 */

import { toolName } from './describe.js';

const LABELS = {
  off: 'Voice is off',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  ready: 'Hold the mic (or Space) to talk',
  listening: 'Listening',
  user_speaking: 'You are speaking',
  thinking: 'Thinking…',
  approval: 'Waiting for your approval',
  speaking: 'Speaking',
  paused: 'Paused — go on, or stay quiet to let me finish',
};

export class OrbModel {
  constructor() {
    this.state = 'off';
    this.tool = '';
    this.handsFree = false;
    this.pttHeld = false;
    this.playing = false;
    this.userSpeaking = false;
    this.paused = false; // the agent's playback is held (playback_paused)
  }

  /** The resting state when nothing is happening. */
  idle() {
    if (this.pttHeld) return 'user_speaking';
    return this.handsFree ? 'listening' : 'ready';
  }

  set(state) {
    this.state = state;
    return state;
  }

  /** Feed one fact; returns the new state. */
  on(fact, detail = {}) {
    switch (fact) {
      case 'connecting':
      case 'reconnecting':
      case 'off':
        this.playing = false;
        this.paused = false;
        return this.set(fact);
      case 'open':
      case 'mode':
        if (this.paused) return this.set('paused');
        return this.set(this.playing ? 'speaking' : this.idle());
      case 'playback_paused':
        this.paused = true;
        return this.set('paused');
      case 'playback_resumed':
        this.paused = false;
        return this.set(this.playing ? 'speaking' : this.idle());
      case 'ptt_down':
        this.pttHeld = true;
        return this.set('user_speaking');
      case 'ptt_up':
        this.pttHeld = false;
        return this.set('thinking');
      case 'vad':
        this.userSpeaking = detail.state === 'speech_started';
        if (this.paused) return this.set('paused'); // the pause shows until it resolves
        if (this.userSpeaking) return this.set('user_speaking');
        return this.set(this.playing ? 'speaking' : 'thinking');
      case 'transcript_final':
        this.userSpeaking = false;
        if (this.paused) return this.set('paused');
        return this.set(this.playing ? 'speaking' : 'thinking');
      case 'tool_call_started':
        this.tool = detail.name || '';
        return this.set('tool');
      case 'tool_call_completed':
        return this.set(this.playing ? 'speaking' : 'thinking');
      case 'approval_requested':
        return this.set('approval');
      case 'playing':
        this.playing = Boolean(detail.playing);
        if (this.paused) return this.set('paused');
        if (this.playing) return this.set('speaking');
        return this.set(this.state === 'speaking' ? this.idle() : this.state);
      case 'interrupted':
        this.playing = false;
        this.paused = false;
        return this.set(this.userSpeaking || this.pttHeld ? 'user_speaking' : this.idle());
      case 'turn_end':
        this.userSpeaking = false;
        if (detail.status === 'awaiting_approval') return this.set('approval');
        return this.set(this.playing ? 'speaking' : this.idle());
      default:
        return this.state;
    }
  }

  label() {
    if (this.state === 'tool') return `Running ${toolName(this.tool).toLowerCase() || 'a tool'}…`;
    return LABELS[this.state] || this.state;
  }
}

export class OrbView {
  constructor(orb, label) {
    this.orb = orb;
    this.labelEl = label;
  }

  show(model) {
    this.orb.dataset.state = model.state;
    document.body.dataset.voice = model.state;
    document.body.classList.toggle('hands-free', model.handsFree);
    const text = model.label();
    if (this.labelEl.textContent !== text) this.labelEl.textContent = text;
  }

  /** `level` 0..1 drives the orb's glow/scale through a CSS variable. */
  level(level) {
    const shaped = Math.min(1, Math.sqrt(Math.max(0, level)) * 1.6);
    this.orb.style.setProperty('--level', shaped.toFixed(3));
  }
}
