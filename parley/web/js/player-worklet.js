/**
 * AudioWorklet: gapless playback of the server's PCM16 at its own rate.
 *
 * Theory of operation. Incoming chunks go into a growing ring buffer of float samples at
 * the source rate; `process()` reads it with linear interpolation at the context rate.
 * Playback starts once `PREBUFFER_MS` is queued (or the response is known complete), so
 * the first words do not stutter. Each chunk carries a response number; the position of
 * the response being heard is reported every `REPORT_MS` as
 * `{type: 'position', response, ms}`. `{type: 'clear'}` drops everything queued at once
 * (barge-in) and answers `{type: 'cleared', response, ms}` with the last position heard.
 * `{type: 'state', playing}` is posted when sound starts or the queue runs dry.
 * `{type: 'pause'}` holds playback where it is (the server heard a sound over the agent:
 * `playback_paused`), keeping the queue; `{type: 'resume'}` plays on from there.
 *
 * Messages in: `{type: 'config', rate}`, `{type: 'audio', pcm: ArrayBuffer, response}`,
 * `{type: 'end', response}` (no more audio for it), `{type: 'clear'}`, `{type: 'pause'}`,
 * `{type: 'resume'}`.
 */

const PREBUFFER_MS = 80;
const REPORT_MS = 100;

class PlayerProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ring = new Float32Array(1 << 16);
    this.readAt = 0; // absolute index of the next source sample
    this.writeAt = 0; // absolute index one past the last queued sample
    this.fraction = 0;
    this.drainUntil = 0; // samples before this may play without prebuffering
    this.markers = []; // [{at, response}] where each response's audio begins
    this.playing = false;
    this.paused = false;
    this.sinceReport = 0;
    this.configure(16000);
    this.port.onmessage = (event) => this.receive(event.data);
  }

  configure(rate) {
    this.rate = rate;
    this.step = rate / sampleRate;
    this.prebuffer = Math.round((rate * PREBUFFER_MS) / 1000);
  }

  receive(message) {
    if (message.type === 'config') this.configure(message.rate);
    else if (message.type === 'audio') this.enqueue(new Int16Array(message.pcm), message.response);
    else if (message.type === 'end') this.drainUntil = this.writeAt;
    else if (message.type === 'clear') this.clear();
    else if (message.type === 'pause') this.paused = true;
    else if (message.type === 'resume') this.paused = false;
  }

  enqueue(pcm, response) {
    const last = this.markers[this.markers.length - 1];
    if (!last || last.response !== response) this.markers.push({ at: this.writeAt, response });
    this.reserve(pcm.length);
    const mask = this.ring.length - 1;
    for (let i = 0; i < pcm.length; i++) this.ring[(this.writeAt + i) & mask] = pcm[i] / 32768;
    this.writeAt += pcm.length;
  }

  reserve(extra) {
    const needed = this.writeAt - this.readAt + extra + 2;
    if (needed <= this.ring.length) return;
    let size = this.ring.length;
    while (size < needed) size *= 2;
    const bigger = new Float32Array(size);
    const oldMask = this.ring.length - 1;
    for (let i = this.readAt; i < this.writeAt; i++) bigger[i & (size - 1)] = this.ring[i & oldMask];
    this.ring = bigger;
  }

  position() {
    while (this.markers.length > 1 && this.markers[1].at <= this.readAt) this.markers.shift();
    const current = this.markers[0];
    if (!current) return null;
    const played = Math.max(0, this.readAt - current.at);
    return { response: current.response, ms: Math.round((played * 1000) / this.rate) };
  }

  report(type) {
    const where = this.position();
    if (where) this.port.postMessage({ type, ...where });
    else if (type === 'cleared') this.port.postMessage({ type, response: null, ms: 0 });
  }

  clear() {
    this.report('cleared');
    this.readAt = this.writeAt;
    this.drainUntil = this.writeAt;
    this.fraction = 0;
    this.markers = [];
    this.paused = false;
    this.setPlaying(false);
  }

  setPlaying(playing) {
    if (playing === this.playing) return;
    this.playing = playing;
    if (!playing) this.report('position');
    this.port.postMessage({ type: 'state', playing });
  }

  process(_inputs, outputs) {
    const output = outputs[0];
    const out = output[0];
    if (this.paused) {
      for (const channel of output) channel.fill(0);
      return true; // position, queue and playing state are held as they are
    }
    const queued = this.writeAt - this.readAt;
    if (!this.playing && (queued >= this.prebuffer || (queued > 0 && this.drainUntil > this.readAt))) {
      this.setPlaying(true);
    }
    const mask = this.ring.length - 1;
    for (let i = 0; i < out.length; i++) {
      if (!this.playing || this.readAt >= this.writeAt) {
        out[i] = 0;
        continue;
      }
      const a = this.ring[this.readAt & mask];
      const b = this.readAt + 1 < this.writeAt ? this.ring[(this.readAt + 1) & mask] : a;
      out[i] = a + (b - a) * this.fraction;
      this.fraction += this.step;
      const whole = Math.floor(this.fraction);
      this.readAt = Math.min(this.readAt + whole, this.writeAt);
      this.fraction -= whole;
    }
    for (let c = 1; c < output.length; c++) output[c].set(out);
    if (this.playing && this.readAt >= this.writeAt) this.setPlaying(false);
    this.sinceReport += out.length;
    if (this.playing && this.sinceReport >= (sampleRate * REPORT_MS) / 1000) {
      this.sinceReport = 0;
      this.report('position');
    }
    return true;
  }
}

registerProcessor('parley-player', PlayerProcessor);
