/**
 * Turn events (PROTOCOL.md "Turn events", plus the voice text frames) → the transcript.
 *
 * One presenter serves both channels: SSE events from chat and JSON frames from the voice
 * WebSocket have the same `{type, ...fields}` shape. It remembers the streaming assistant
 * bubble, tool rows and approval cards by tool call id, so later events update them.
 * Decisions and carousel picks go out through the callbacks the app provides.
 */

import { historyToItems } from './history.js';

export class TurnPresenter {
  /**
   * @param {import('./transcript.js').Transcript} transcript
   * @param {{decide: (toolCallId: string, approved: boolean) => void,
   *          pick: (item: object) => void, toast: (text: string, kind?: string) => void}} actions
   */
  constructor(transcript, actions) {
    this.transcript = transcript;
    this.actions = actions;
    this.bubble = null;
    this.textSource = null; // 'delta' or 'chunk': voice sends both with the same text
    this.spoken = null; // the last finished bubble whose audio may still be playing
    this.channel = 'chat';
    this.tools = new Map();
    this.approvals = new Map();
  }

  reset() {
    this.transcript.clear();
    this.bubble = null;
    this.spoken = null;
    this.tools.clear();
    this.approvals.clear();
  }

  /** Rebuild the transcript from stored history. */
  showHistory(messages) {
    this.reset();
    for (const item of historyToItems(messages)) {
      if (item.kind === 'user') this.transcript.addUser(item.text, item.channel);
      else if (item.kind === 'assistant') {
        const bubble = this.transcript.addAssistant(item.channel);
        bubble.setText(item.text);
        bubble.finish({ interrupted: item.interrupted });
      } else if (item.kind === 'tool') {
        this.tools.set(item.toolCallId, this.transcript.addTool(item.name, item.status));
      } else if (item.kind === 'approval') this.addApproval(item);
      else if (item.kind === 'carousel') this.addCarousel(item.op);
      else if (item.kind === 'note') this.transcript.addNote(item.text);
    }
    this.transcript.scrollToBottom();
  }

  ensureBubble() {
    if (!this.bubble) {
      this.spoken = null;
      this.textSource = null;
      this.bubble = this.transcript.addAssistant(this.channel);
    }
    return this.bubble;
  }

  /** Streamed text from `assistant_delta` or `assistant_text` chunks, never both. */
  streamText(source, text) {
    const bubble = this.ensureBubble();
    this.textSource = this.textSource || source;
    if (this.textSource === source && text) bubble.append(text);
  }

  /** Close the streaming bubble, e.g. at turn end or when the stream broke. */
  finishBubble(interrupted = false) {
    if (this.bubble) {
      this.bubble.finish({ interrupted });
      if (this.channel === 'voice') this.spoken = this.bubble;
    }
    this.bubble = null;
  }

  /** The user barged in: the bubble being spoken (streaming or done) is marked. */
  interrupted() {
    const target = this.bubble || this.spoken;
    this.bubble = null;
    this.spoken = target; // a truncated assistant_message may still follow
    target?.finish({ interrupted: true });
  }

  addApproval(item) {
    const card = this.transcript.addApproval(item, (approved) => {
      card.decidedLocally = 'click';
      card.busy(true);
      this.actions.decide(item.toolCallId, approved);
    });
    this.approvals.set(item.toolCallId, card);
    return card;
  }

  addCarousel(op) {
    if (!op || op.kind !== 'carousel') {
      this.transcript.addNote(`(The agent sent a "${op?.kind ?? 'unknown'}" view this page cannot show.)`);
      return;
    }
    this.transcript.addCarousel(op, (item) => this.actions.pick(item));
  }

  /** A tool's progress shows on its approval card if it has one, else on its own row. */
  toolStatus(id, name, status) {
    const card = this.approvals.get(id);
    if (card) return card.toolStatus(status);
    const row = this.tools.get(id);
    if (row) return row.setStatus(status);
    this.tools.set(id, this.transcript.addTool(name, status));
  }

  /** Apply one turn or voice event. */
  apply(event) {
    const handler = this.handlers[event.type];
    if (handler) handler.call(this, event);
  }

  handlers = {
    assistant_delta(e) {
      this.streamText('delta', e.text);
    },
    assistant_text(e) {
      // `start` opens nothing: a spoken greeting or filler has no text to show.
      if (e.status === 'chunk') this.streamText('chunk', e.text);
      else if (e.status === 'end') this.finishBubble();
    },
    assistant_message(e) {
      // A truncated copy of the message just spoken replaces its text in place.
      if (!this.bubble && e.interrupted && this.spoken) this.bubble = this.spoken;
      if (!this.bubble && !e.text) return; // a message that only carried tool calls
      const bubble = this.ensureBubble();
      // An interrupted message the user heard nothing of keeps what was shown, marked.
      if (typeof e.text === 'string' && e.text) bubble.setText(e.text);
      this.finishBubble(Boolean(e.interrupted));
    },
    done() {
      this.spoken = null;
    },
    tool_call_started(e) {
      this.finishBubble();
      this.toolStatus(e.tool_call_id, e.name, 'running');
    },
    tool_call_completed(e) {
      this.toolStatus(e.tool_call_id, e.name, e.status || 'ok');
    },
    approval_requested(e) {
      this.finishBubble();
      // The card stands for the tool from now on; drop a row shown before the request.
      this.tools.get(e.tool_call_id)?.el.remove();
      this.tools.delete(e.tool_call_id);
      if (this.approvals.has(e.tool_call_id)) return;
      this.addApproval({
        toolCallId: e.tool_call_id,
        name: e.name,
        arguments: e.arguments,
        prompt: e.prompt,
        status: 'pending',
      });
    },
    approval_resolved(e) {
      const card = this.approvals.get(e.tool_call_id);
      if (card) card.resolve(e.status, e.decided_by || card.decidedLocally || null);
      else this.transcript.addNote(`A pending action was ${e.status}.`);
    },
    ui_op(e) {
      this.finishBubble();
      this.addCarousel(e.op);
    },
    transfer(e) {
      const words = {
        requested: 'Getting a person for you…',
        dialing: 'Waiting for a person to take over — you are on hold.',
        briefing: 'A person is reading up on your conversation…',
        joined: 'A person has joined the conversation.',
        ended: 'The person has left the conversation.',
        failed: `Nobody could be reached${e.reason ? ` (${e.reason})` : ''}.`,
        cancelled: 'The transfer was cancelled.',
      };
      const step = `${e.transfer_id} ${e.status}`;
      if (this.transferStep === step) return; // told already (the turn and the session stream)
      this.transferStep = step;
      this.finishBubble();
      const note = this.transcript.addNote(words[e.status] || `Transfer: ${e.status}`);
      if (note) note.dataset.transfer = e.status;
      this.actions.transfer?.(e);
    },
    human_message(e) {
      // A person of the team, never the assistant: shown as its own kind of row.
      this.finishBubble();
      const note = this.transcript.addNote(`Team member: ${e.text}`, 'human');
      if (note) note.dataset.role = 'human_agent';
    },
    turn_end(e) {
      this.finishBubble(e.status === 'interrupted');
    },
    error(e) {
      this.finishBubble();
      this.actions.toast(e.message || e.code || 'Something went wrong.', 'error', e.code);
    },
    transcript_partial(e) {
      this.transcript.showGhost(e.text);
    },
    transcript_final(e) {
      this.finishBubble();
      if (e.text && e.text.trim()) this.transcript.commitGhost(e.text);
      else this.transcript.clearGhost();
    },
    interrupted() {
      this.interrupted();
    },
  };
}
