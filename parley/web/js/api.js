/**
 * HTTP client for the session API of PROTOCOL.md.
 *
 * JSON calls return parsed bodies; turn calls (messages, initial turn, approvals) return
 * an async iterator of turn events shaped like the WebSocket frames (`{type, ...fields}`)
 * so one presenter renders both channels. Every failure becomes an `ApiError` carrying
 * the HTTP status, the server's stable `code` and its `message`.
 */

import { readEventStream } from './sse.js';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function errorFrom(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && typeof body === 'object') {
      if (typeof body.code === 'string') code = body.code;
      if (typeof body.message === 'string') message = body.message;
      else if (typeof body.detail === 'string') message = body.detail;
    }
  } catch {
    // A body that is not JSON keeps the status text; the status still says what happened.
  }
  const retry = Number.parseInt(response.headers.get('Retry-After') || '', 10);
  return new ApiError(response.status, code, message, Number.isFinite(retry) ? retry : null);
}

export class ApiClient {
  constructor(base = '') {
    this.base = base;
    this.token = null;
  }

  setToken(token) {
    this.token = token;
  }

  async request(method, path, body, accept = 'application/json', signal = undefined) {
    const headers = { Accept: accept };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network', 'Cannot reach the Parley server.');
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async json(method, path, body) {
    const response = await this.request(method, path, body);
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  createSession(agent) {
    return this.json('POST', '/v1/sessions', { agent });
  }

  getSession(sessionId) {
    return this.json('GET', `/v1/sessions/${encodeURIComponent(sessionId)}`);
  }

  getMessages(sessionId) {
    return this.json('GET', `/v1/sessions/${encodeURIComponent(sessionId)}/messages`);
  }

  endSession(sessionId) {
    return this.json('POST', `/v1/sessions/${encodeURIComponent(sessionId)}/end`, {});
  }

  /** One user turn: `input` is `{text}` or `{ui_action: {msg, display}}`. */
  sendMessage(sessionId, input, signal) {
    return this.stream(`/v1/sessions/${encodeURIComponent(sessionId)}/messages`, input, signal);
  }

  initialTurn(sessionId, signal) {
    return this.stream(`/v1/sessions/${encodeURIComponent(sessionId)}/initial-turn`, {}, signal);
  }

  decideApproval(sessionId, toolCallId, approved, signal) {
    const path =
      `/v1/sessions/${encodeURIComponent(sessionId)}` +
      `/approvals/${encodeURIComponent(toolCallId)}`;
    return this.stream(path, { approved }, signal);
  }

  /**
   * POST and stream the SSE answer. The request is made eagerly so HTTP errors (409,
   * 410, 429...) reject the returned promise before any event is read.
   */
  async stream(path, body, signal) {
    const response = await this.request('POST', path, body, 'text/event-stream', signal);
    return turnEvents(response.body);
  }
}

async function* turnEvents(body) {
  for await (const { event, data } of readEventStream(body)) {
    let fields;
    try {
      fields = JSON.parse(data);
    } catch {
      throw new ApiError(0, 'bad_stream', `The server sent an unreadable "${event}" event.`);
    }
    yield { ...fields, type: event };
  }
}
