/**
 * Incremental parser for `text/event-stream` bodies.
 *
 * EventSource cannot POST, so turns are read from a fetch() body instead. The parser is
 * pure: feed it decoded text in any chunking and it returns the complete events so far
 * (`{event, data}` with multi-line `data` joined by "\n"), following the WHATWG rules
 * for line endings (CRLF, LF, CR), comments (":") and the single optional space.
 */

export class SseParser {
  constructor() {
    this.buffer = '';
    this.eventName = '';
    this.dataLines = [];
  }

  /** Feed decoded text; returns the events completed by it. `final` flushes the tail. */
  feed(text, final = false) {
    this.buffer += text;
    const events = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone CR at the very end may be the first half of a CRLF split across chunks.
      if (match[0] === '\r' && match.index === this.buffer.length - 1 && !final) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.processLine(line);
      if (event) events.push(event);
    }
    if (final) {
      if (this.buffer) {
        const event = this.processLine(this.buffer);
        if (event) events.push(event);
        this.buffer = '';
      }
      const event = this.processLine('');
      if (event) events.push(event);
    }
    return events;
  }

  processLine(line) {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.eventName = value;
    else if (field === 'data') this.dataLines.push(value);
    return null;
  }

  dispatch() {
    if (this.dataLines.length === 0) {
      this.eventName = '';
      return null;
    }
    const event = { event: this.eventName || 'message', data: this.dataLines.join('\n') };
    this.eventName = '';
    this.dataLines = [];
    return event;
  }
}

/** Async generator of `{event, data}` read from a fetch Response body stream. */
export async function* readEventStream(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    yield* parser.feed(decoder.decode(), true);
  } finally {
    reader.releaseLock();
  }
}
