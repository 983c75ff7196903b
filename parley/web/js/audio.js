/**
 * Browser audio for voice mode: one AudioContext holding the microphone capture worklet
 * (→ 16 kHz PCM16, 20 ms frames) and the playback worklet (server PCM16 → speakers,
 * through an AnalyserNode so the page can show and report the output level).
 *
 * The context must be created from a user gesture (the mic button). Errors from
 * getUserMedia are rethrown as `MicError` with a sentence a person can act on.
 */

const MIC_WORKLET = new URL('./mic-worklet.js', import.meta.url);
const PLAYER_WORKLET = new URL('./player-worklet.js', import.meta.url);

/**
 * Measured with bench/mic_constraints.py (see bench/RESULTS.md): the browser's noise
 * suppression costs the embedded recogniser words in every run (WER 3.5 % → 8–11 % on a
 * quiet floor, 10–11 % → 15 % with noise), so it is off; automatic gain control is neutral
 * at full level and rescues a quiet speaker (14 % → 4 %), so it stays on, as does echo
 * cancellation (the agent's own voice must not reach the recogniser or barge in).
 */
const MIC_CONSTRAINTS = {
  echoCancellation: true,
  noiseSuppression: false,
  autoGainControl: true,
  channelCount: 1,
};

export class MicError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'MicError';
    this.code = code;
  }
}

function micError(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
    return new MicError(
      'mic_denied',
      'Microphone permission was denied. Allow the microphone for this site to talk, or keep typing.',
    );
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') {
    return new MicError('mic_missing', 'No microphone was found. Plug one in, or keep typing.');
  }
  if (name === 'NotReadableError') {
    return new MicError('mic_busy', 'The microphone is in use by another application.');
  }
  return new MicError('mic_failed', `The microphone could not be opened (${err?.message || err}).`);
}

export class AudioEngine {
  /**
   * @param {{onFrame: (pcm: ArrayBuffer, rms: number) => void,
   *          onPlayer: (message: object) => void}} handlers
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.context = null;
    this.player = null;
    this.analyser = null;
    this.stream = null;
    this.source = null;
    this.mic = null;
    this.levelBuffer = null;
  }

  /** Create the context and the playback chain (call from a user gesture). */
  async open() {
    if (this.context) {
      if (this.context.state === 'suspended') await this.context.resume();
      return;
    }
    const AudioCtx = window.AudioContext || window.webkitAudioContext;
    if (!AudioCtx || !window.AudioWorkletNode) {
      throw new MicError('no_audio', 'This browser cannot play or record audio here (no AudioWorklet).');
    }
    const context = new AudioCtx({ latencyHint: 'interactive' });
    this.context = context;
    await context.audioWorklet.addModule(MIC_WORKLET);
    await context.audioWorklet.addModule(PLAYER_WORKLET);
    this.player = new AudioWorkletNode(context, 'parley-player', { outputChannelCount: [1] });
    this.player.port.onmessage = (event) => this.handlers.onPlayer(event.data);
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.levelBuffer = new Float32Array(this.analyser.fftSize);
    this.player.connect(this.analyser);
    this.analyser.connect(context.destination);
    if (context.state === 'suspended') await context.resume();
  }

  /** Ask for the microphone and start producing frames. */
  async startMic() {
    if (this.stream) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MicError(
        'mic_unavailable',
        'The microphone needs a secure page (https:// or localhost) in this browser.',
      );
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: MIC_CONSTRAINTS });
    } catch (err) {
      throw micError(err);
    }
    this.stream = stream;
    this.source = this.context.createMediaStreamSource(stream);
    this.mic = new AudioWorkletNode(this.context, 'parley-mic', { numberOfOutputs: 0 });
    this.mic.port.onmessage = (event) => {
      if (event.data.type === 'frame') this.handlers.onFrame(event.data.pcm, event.data.rms);
    };
    this.source.connect(this.mic);
  }

  stopMic() {
    if (this.source) this.source.disconnect();
    if (this.mic) this.mic.port.onmessage = null;
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = this.source = this.mic = null;
  }

  setOutputRate(rate) {
    this.player?.port.postMessage({ type: 'config', rate });
  }

  play(pcm, response) {
    this.player?.port.postMessage({ type: 'audio', pcm, response }, [pcm]);
  }

  endResponse(response) {
    this.player?.port.postMessage({ type: 'end', response });
  }

  /** Drop every queued sample now (barge-in). */
  clearPlayback() {
    this.player?.port.postMessage({ type: 'clear' });
  }

  /** Hold playback where it is, keeping the queue (`playback_paused`); `resume` plays on. */
  pausePlayback(paused) {
    this.player?.port.postMessage({ type: paused ? 'pause' : 'resume' });
  }

  /** Peak absolute sample value leaving the player right now (0..1). */
  outputLevel() {
    if (!this.analyser) return 0;
    this.analyser.getFloatTimeDomainData(this.levelBuffer);
    let peak = 0;
    for (const v of this.levelBuffer) peak = Math.max(peak, Math.abs(v));
    return peak;
  }

  async close() {
    this.stopMic();
    const context = this.context;
    this.context = this.player = this.analyser = null;
    if (context) await context.close();
  }
}
