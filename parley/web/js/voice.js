/**
 * The voice WebSocket (`/v1/voice`): start/ready handshake, JSON frames both ways, binary
 * PCM16 both ways, keep-alive pings, and reconnection with the resume token.
 *
 * Life cycle: `connect()` opens and sends the start frame; `ready` resolves it. If the
 * socket drops afterwards (not closed by us, session not ended), it reconnects with
 * `{"type": "start", "resume_token"}` with backoff, also right after `go_away`. Status
 * changes go to `onStatus`: connecting, open, reconnecting, closed, failed.
 */

const RETRY_DELAYS_MS = [250, 1000, 2000, 4000, 8000];
const PING_EVERY_MS = 15000;

export class VoiceConnection {
  /**
   * @param {{url: string, start: object, resumeToken: string | null,
   *          onEvent: (frame: object) => void, onAudio: (pcm: ArrayBuffer) => void,
   *          onStatus: (status: string, detail?: string) => void}} options
   *   `start` holds the first start frame's fields (session_id, session_token, ...);
   *   `resumeToken` is the session's, used if the socket drops (`ready` may renew it).
   */
  constructor({ url, start, resumeToken, onEvent, onAudio, onStatus }) {
    this.url = url;
    this.start = start;
    this.onEvent = onEvent;
    this.onAudio = onAudio;
    this.onStatus = onStatus;
    this.socket = null;
    this.resumeToken = resumeToken || null;
    this.refusal = null; // the server's `error` frame when it refused a start frame
    this.ready = false;
    this.closedByUs = false;
    this.ended = false;
    this.replaced = false; // a newer voice connection took the session over
    this.attempt = 0;
    this.retryTimer = 0;
    this.pingTimer = 0;
    this.oddByte = null;
    this.framesSent = 0;
    this.bytesSent = 0;
    this.framesReceived = 0;
  }

  get isOpen() {
    return Boolean(this.socket && this.socket.readyState === WebSocket.OPEN && this.ready);
  }

  /** Open the socket; resolves with the `ready` frame, rejects if it never gets one. */
  connect() {
    this.closedByUs = false;
    this.replaced = false;
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.open(this.start);
    });
  }

  open(startFields) {
    this.onStatus(this.resumeToken && this.attempt ? 'reconnecting' : 'connecting');
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (err) {
      this.fail(`The voice connection could not be opened (${err.message}).`);
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.ready = false;
    socket.onopen = () => socket.send(JSON.stringify({ type: 'start', ...startFields }));
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => this.closed(socket, event);
  }

  receive(data) {
    if (typeof data !== 'string') {
      this.framesReceived += 1;
      this.onAudio(this.evenBytes(data));
      return;
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this.onEvent({ type: 'error', code: 'bad_frame', message: 'The server sent an unreadable frame.' });
      return;
    }
    if (frame.type === 'error' && !this.ready) {
      this.refusal = frame; // reported once, when the socket closes
      return;
    }
    if (frame.type === 'ready') this.becameReady(frame);
    if (frame.type === 'go_away' && frame.resume_token) this.resumeToken = frame.resume_token;
    if (frame.type === 'session_ended') this.ended = true;
    // a newer voice connection (another tab) took the session over: do not reconnect,
    // or the two would take it from each other forever
    if (frame.type === 'error' && frame.code === 'attachment_replaced') this.replaced = true;
    this.onEvent(frame);
  }

  /** PCM16 needs whole samples: carry a trailing odd byte into the next frame. */
  evenBytes(buffer) {
    let bytes = new Uint8Array(buffer);
    if (this.oddByte !== null) {
      const joined = new Uint8Array(bytes.length + 1);
      joined[0] = this.oddByte;
      joined.set(bytes, 1);
      bytes = joined;
      this.oddByte = null;
    }
    if (bytes.length % 2) {
      this.oddByte = bytes[bytes.length - 1];
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    return bytes.slice().buffer;
  }

  becameReady(frame) {
    this.ready = true;
    this.attempt = 0;
    if (frame.resume_token) this.resumeToken = frame.resume_token;
    clearInterval(this.pingTimer);
    // the agent's heartbeat: silent for two of them and the server takes us for gone
    const every = frame.heartbeat_s ? Math.min(frame.heartbeat_s * 1000, PING_EVERY_MS) : PING_EVERY_MS;
    this.pingTimer = setInterval(() => this.send({ type: 'ping' }), every);
    this.onStatus('open');
    if (this.pending) {
      this.pending.resolve(frame);
      this.pending = null;
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    clearInterval(this.pingTimer);
    const wasReady = this.ready;
    this.ready = false;
    this.socket = null;
    if (this.closedByUs || this.ended || this.replaced) {
      this.onStatus('closed');
      return;
    }
    const refusal = this.refusal;
    this.refusal = null;
    if (refusal) {
      this.fail(`The voice server refused the connection: ${refusal.message || refusal.code}.`, refusal.code);
      return;
    }
    const canResume = this.resumeToken && (wasReady || this.attempt > 0);
    if (!canResume || this.attempt >= RETRY_DELAYS_MS.length) {
      const why = event.reason ? ` (${event.reason})` : event.code === 1006 ? '' : ` (code ${event.code})`;
      this.fail(
        wasReady || this.attempt
          ? `The voice connection dropped and could not be resumed${why}.`
          : `Could not connect to the voice server${why}. Chat still works.`,
      );
      return;
    }
    const delay = RETRY_DELAYS_MS[this.attempt];
    this.attempt += 1;
    this.onStatus('reconnecting');
    this.retryTimer = setTimeout(() => this.open({ ...this.resumeFields() }), delay);
  }

  resumeFields() {
    const { sample_rate, mode, transcripts } = this.start;
    return { resume_token: this.resumeToken, sample_rate, mode, transcripts };
  }

  fail(message, code = 'no_websocket') {
    this.onStatus('failed', message, code);
    if (this.pending) {
      this.pending.reject(new Error(message));
      this.pending = null;
    }
  }

  /** Send a JSON frame; false when the socket is not open (the caller says so). */
  send(frame) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  sendAudio(pcm) {
    if (!this.isOpen) return false;
    this.socket.send(pcm);
    this.framesSent += 1;
    this.bytesSent += pcm.byteLength;
    return true;
  }

  setMode(mode) {
    this.start = { ...this.start, mode };
  }

  /** Close on purpose (leaving voice mode): no reconnect. */
  close(code = 1000, reason = 'client closed') {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(code, reason);
    this.socket = null;
    this.ready = false;
    if (this.pending) {
      this.pending.reject(new Error('closed'));
      this.pending = null;
    }
    this.onStatus('closed');
  }
}
