/**
 * AudioWorklet: microphone → 16 kHz PCM16 frames of 20 ms.
 *
 * Runs at the AudioContext's rate (44.1/48 kHz usually). Channels are mixed to mono,
 * low-passed with a windowed-sinc FIR below the target Nyquist, then resampled by linear
 * interpolation. Each 20 ms frame is posted as `{type: 'frame', pcm: ArrayBuffer, rms}`
 * (the buffer is transferred, not copied).
 */

const TARGET_RATE = 16000;
const FRAME_MS = 20;
const TAPS = 31;

function lowPass(cutoff) {
  // Blackman-windowed sinc, cutoff in cycles per input sample, normalised to unit gain.
  const taps = new Float32Array(TAPS);
  const mid = (TAPS - 1) / 2;
  let sum = 0;
  for (let i = 0; i < TAPS; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const w =
      0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (TAPS - 1)) +
      0.08 * Math.cos((4 * Math.PI * i) / (TAPS - 1));
    taps[i] = sinc * w;
    sum += taps[i];
  }
  for (let i = 0; i < TAPS; i++) taps[i] /= sum;
  return taps;
}

class MicProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / TARGET_RATE;
    this.filter = this.ratio > 1 ? lowPass((0.45 * TARGET_RATE) / sampleRate) : null;
    this.history = new Float32Array(TAPS);
    this.head = 0;
    this.previous = 0;
    this.position = 1;
    this.frameSize = (TARGET_RATE * FRAME_MS) / 1000;
    this.frame = new Int16Array(this.frameSize);
    this.filled = 0;
    this.energy = 0;
  }

  filtered(sample) {
    if (!this.filter) return sample;
    this.history[this.head] = sample;
    this.head = (this.head + 1) % TAPS;
    let acc = 0;
    for (let k = 0; k < TAPS; k++) acc += this.filter[k] * this.history[(this.head + k) % TAPS];
    return acc;
  }

  emit(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.energy += clamped * clamped;
    this.frame[this.filled++] = Math.round(clamped < 0 ? clamped * 32768 : clamped * 32767);
    if (this.filled === this.frameSize) {
      const rms = Math.sqrt(this.energy / this.frameSize);
      this.port.postMessage({ type: 'frame', pcm: this.frame.buffer, rms }, [this.frame.buffer]);
      this.frame = new Int16Array(this.frameSize);
      this.filled = 0;
      this.energy = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    for (let i = 0; i < length; i++) {
      let mixed = 0;
      for (const channel of channels) mixed += channel[i];
      const current = this.filtered(mixed / channels.length);
      // Outputs lie between the previous sample (0) and this one (1).
      while (this.position <= 1) {
        this.emit(this.previous + (current - this.previous) * this.position);
        this.position += this.ratio;
      }
      this.position -= 1;
      this.previous = current;
    }
    return true;
  }
}

registerProcessor('parley-mic', MicProcessor);
