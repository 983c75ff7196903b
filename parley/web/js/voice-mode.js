/**
 * Voice mode: the mic button's gestures, the voice WebSocket, capture and playback.
 *
 * Gestures: a press shorter than HOLD_MS is a click and toggles hands-free (audio streams
 * continuously, the server's VAD finds turns); a longer hold is push-to-talk (`ptt` down,
 * the audio since the press, `ptt` up on release). Space does the same when focus is not
 * in a text field. Pressing while the agent speaks interrupts it.
 *
 * Playback: binary frames are numbered per response (a response ends with `done` or
 * `interrupted`), played gaplessly by the player worklet, and its positions are sent back
 * as `played` {ms} a few times a second. `interrupted` drops all queued audio at once.
 */

import { AudioEngine, MicError } from './audio.js';
import { OrbModel, OrbView } from './orb.js';
import { VoiceConnection } from './voice.js';

const HOLD_MS = 300;
const PREROLL_MAX_FRAMES = 150; // 3 s of 20 ms frames
const CAPTURE_RATE = 16000;
const ORB_FACTS = new Set([
  'vad', 'transcript_final', 'tool_call_started', 'tool_call_completed', 'approval_requested',
  'turn_end',
]);

export class VoiceMode {
  /**
   * @param {{orb: HTMLElement, label: HTMLElement, session: () => object,
   *          onFrame: (frame: object) => void, onReady: (frame: object) => void,
   *          onChannel: (channel: string) => void, onHandsFree: (on: boolean) => void,
   *          banner: (text: string | null) => void,
   *          toast: (text: string, kind?: string, code?: string) => void}} deps
   */
  constructor(deps) {
    this.deps = deps;
    this.model = new OrbModel();
    this.view = new OrbView(deps.orb, deps.label);
    this.audio = new AudioEngine({
      onFrame: (pcm, rms) => this.micFrame(pcm, rms),
      onPlayer: (message) => this.playerMessage(message),
    });
    this.connection = null;
    this.connecting = null;
    this.pressing = false;
    this.holdTimer = 0;
    this.pttDownSent = false;
    this.preroll = [];
    this.response = 0;
    this.responseOpen = false;
    this.interruptAfterClear = false;
    this.dropStaleAudio = false; // after our `interrupt`, until the server acknowledges
    this.lastReported = 0;
    this.meterTimer = 0;
    this.stats = {
      framesSent: 0, bytesSent: 0, audioFramesReceived: 0, micLevel: 0, playbackLevel: 0,
      maxPlaybackLevel: 0, playedMs: 0, playedReports: 0, interruptions: 0, playing: false,
      pauses: 0, paused: false,
    };
  }

  get active() {
    return Boolean(this.connection);
  }

  get open() {
    return Boolean(this.connection && this.connection.isOpen);
  }

  paint(fact, detail) {
    if (fact) this.model.on(fact, detail);
    this.view.show(this.model);
  }

  // --- gestures ---------------------------------------------------------------------

  pressStart() {
    if (this.pressing) return;
    this.pressing = true;
    this.preroll = [];
    this.holdTimer = setTimeout(() => this.beginPtt(), HOLD_MS);
    this.ensure();
  }

  pressEnd() {
    if (!this.pressing) return;
    this.pressing = false;
    clearTimeout(this.holdTimer);
    if (this.model.pttHeld) {
      if (this.pttDownSent) this.connection?.send({ type: 'ptt', state: 'up' });
      this.pttDownSent = false;
      this.paint('ptt_up');
    } else {
      this.preroll = [];
      this.toggleHandsFree();
    }
  }

  beginPtt() {
    if (!this.pressing) return;
    if (this.model.playing || this.responseOpen) this.interrupt();
    this.paint('ptt_down');
    this.flushPtt();
  }

  /** Once the socket is open and the user is holding, send `ptt` down and the preroll. */
  flushPtt() {
    if (!this.model.pttHeld || this.pttDownSent || !this.open) return;
    this.pttDownSent = this.connection.send({ type: 'ptt', state: 'down' });
    for (const frame of this.preroll) this.sendFrame(frame);
    this.preroll = [];
  }

  toggleHandsFree() {
    this.model.handsFree = !this.model.handsFree;
    this.connection?.setMode(this.model.handsFree ? 'hands_free' : 'push_to_talk');
    this.deps.onHandsFree(this.model.handsFree);
    if (this.model.handsFree) this.ensure();
    this.paint('mode');
  }

  /** Stop the agent now: drop playback, report where it stopped, tell the server. */
  interrupt() {
    if (!this.open) return;
    this.responseOpen = false;
    this.dropStaleAudio = true; // frames already on the wire belong to the stopped response
    // While sound plays, the player reports where it stopped before we tell the server.
    this.interruptAfterClear = this.model.playing;
    this.audio.clearPlayback();
    if (!this.interruptAfterClear) this.connection.send({ type: 'interrupt' });
  }

  // --- connection -----------------------------------------------------------------------

  /** Connect (once) and open the mic; errors become toasts and leave voice mode. */
  ensure() {
    if (!this.connecting) this.connecting = this.connect();
    return this.connecting;
  }

  async connect() {
    if (typeof WebSocket === 'undefined') {
      this.fail(new MicError('no_websocket', 'This browser has no WebSocket support; voice is unavailable.'));
      return false;
    }
    this.deps.onChannel('connecting');
    this.paint('connecting');
    try {
      await this.audio.open();
      await this.audio.startMic();
    } catch (err) {
      this.fail(err instanceof MicError ? err : new MicError('audio_failed', String(err.message || err)));
      return false;
    }
    const session = this.deps.session();
    // Decided now, after the mic opened: by then a short click has become hands-free.
    const mode = this.model.handsFree ? 'hands_free' : 'push_to_talk';
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.connection = new VoiceConnection({
      url: `${scheme}//${location.host}/v1/voice`,
      start: {
        session_id: session.session_id,
        session_token: session.session_token,
        sample_rate: CAPTURE_RATE,
        mode,
        transcripts: true,
      },
      resumeToken: session.resume_token,
      onEvent: (frame) => this.frame(frame),
      onAudio: (pcm) => this.audioIn(pcm),
      onStatus: (status, detail, code) => this.status(status, detail, code),
    });
    try {
      await this.connection.connect();
    } catch {
      return false; // status('failed') already told the user
    }
    this.startMeter();
    return true;
  }

  status(status, detail, code) {
    if (status === 'open') {
      this.deps.onChannel('voice');
      this.deps.banner(null);
      this.paint('open');
      this.flushPtt();
    } else if (status === 'reconnecting') {
      this.deps.banner('Voice connection lost — reconnecting…');
      this.responseOpen = false;
      this.stats.paused = false;
      this.audio.clearPlayback();
      this.paint('reconnecting');
    } else if (status === 'failed') {
      this.deps.banner(null);
      this.deps.toast(detail || 'The voice connection failed.', 'error', code || 'no_websocket');
      this.shutdown();
    } else if (status === 'closed' && this.connection) {
      this.shutdown();
    }
  }

  fail(err) {
    this.deps.toast(err.message, 'error', err.code);
    this.shutdown();
  }

  /** Leave voice mode on purpose (the End voice button). */
  leave() {
    this.connection?.close(1000, 'left voice mode');
    this.shutdown();
  }

  shutdown() {
    const connection = this.connection;
    this.connection = null;
    this.connecting = null;
    if (connection && !connection.closedByUs) connection.close(1000, 'voice stopped');
    clearInterval(this.meterTimer);
    this.audio.close().catch((err) => console.error('[parley] closing audio failed', err));
    clearTimeout(this.holdTimer);
    this.pressing = false;
    this.pttDownSent = false;
    this.model.pttHeld = false;
    this.model.handsFree = false;
    this.deps.onHandsFree(false);
    this.stats.playing = false;
    this.stats.paused = false;
    this.paint('off');
    this.deps.onChannel('chat');
  }

  send(frame) {
    if (this.connection && this.connection.send(frame)) return true;
    this.deps.toast('Voice is not connected yet — try again in a moment.', 'error', 'voice_not_open');
    return false;
  }

  // --- audio both ways ----------------------------------------------------------------

  micFrame(pcm, rms) {
    this.stats.micLevel = rms;
    const sending = this.model.handsFree || this.pttDownSent;
    if (sending && this.open) {
      this.sendFrame(pcm);
    } else if (this.pressing || this.model.pttHeld) {
      this.preroll.push(pcm);
      if (this.preroll.length > PREROLL_MAX_FRAMES) this.preroll.shift();
    }
  }

  sendFrame(pcm) {
    if (this.connection?.sendAudio(pcm)) {
      this.stats.framesSent += 1;
      this.stats.bytesSent += pcm.byteLength;
    }
  }

  audioIn(pcm) {
    this.stats.audioFramesReceived += 1;
    if (this.dropStaleAudio) return;
    if (!this.responseOpen) {
      this.response += 1;
      this.responseOpen = true;
    }
    this.audio.play(pcm, this.response);
  }

  playerMessage(message) {
    if (message.type === 'state') {
      this.stats.playing = message.playing;
      this.paint('playing', { playing: message.playing });
    } else if (message.type === 'position' && message.response === this.response && this.open) {
      if (message.ms !== this.stats.playedMs || message.response !== this.lastReported) {
        this.stats.playedMs = message.ms;
        this.lastReported = message.response;
        this.stats.playedReports += 1;
        this.connection.send({ type: 'played', ms: message.ms });
      }
    } else if (message.type === 'cleared' && this.interruptAfterClear) {
      this.interruptAfterClear = false;
      if (message.response === this.response) this.connection?.send({ type: 'played', ms: message.ms });
      this.connection?.send({ type: 'interrupt' });
    }
  }

  startMeter() {
    clearInterval(this.meterTimer);
    this.meterTimer = setInterval(() => {
      const out = this.audio.outputLevel();
      this.stats.playbackLevel = out;
      this.stats.maxPlaybackLevel = Math.max(this.stats.maxPlaybackLevel, out);
      const sending = this.model.handsFree || this.model.pttHeld;
      this.view.level(Math.max(out, sending ? this.stats.micLevel * 4 : 0));
    }, 50);
  }

  // --- frames from the server ---------------------------------------------------------

  frame(frame) {
    const type = frame.type;
    if (type === 'interrupted' || type === 'done' || (type === 'assistant_text' && frame.status === 'start')) {
      this.dropStaleAudio = false; // what follows belongs to a new response
    }
    if (type === 'ready') {
      this.audio.setOutputRate(frame.output_sample_rate || 16000);
      this.deps.onReady(frame);
    } else if (type === 'interrupted') {
      this.stats.interruptions += 1;
      this.stats.paused = false;
      this.responseOpen = false;
      this.audio.clearPlayback();
      this.paint('interrupted');
    } else if (type === 'playback_paused' || type === 'playback_resumed') {
      const paused = type === 'playback_paused';
      if (paused) this.stats.pauses += 1;
      this.stats.paused = paused;
      this.audio.pausePlayback(paused); // a sound over the agent: hold the queue, not drop it
      this.paint(type);
    } else if (type === 'done') {
      this.audio.endResponse(this.response);
      this.responseOpen = false;
    } else if (ORB_FACTS.has(type)) {
      this.paint(type, frame);
    }
    this.deps.onFrame(frame);
  }
}
