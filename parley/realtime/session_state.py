"""The Realtime session as a sans-I/O state machine: client events and Parley events in,
server events and actions out. No asyncio, no clock, no sockets.

Theory of operation
-------------------
One ``RealtimeSession`` per connection. Its socket loop feeds it three kinds of input and
carries out what comes back (a list of ``Send`` and actions, in order; see
``parley.realtime.actions``):

- ``receive(client_event)`` — a parsed client event (``parley.realtime.wire``). A parse
  error goes through ``reject(err)`` and becomes an ``error`` event; so does any event
  that contradicts the session (an unknown item id, a second response, …). An error
  never changes state: the session goes on.
- ``on_event(event)`` / ``on_audio(pcm, text)`` / ``on_function_call(...)`` — what the
  voice session and the brain produce (``parley.events``), mapped to Realtime events.
- ``turn_stopped()`` — the loop's report that a cancelled turn has really stopped.

Responses. At most one response runs at a time. Its phase:

    phase       input                             next        emits
    IDLE        response.create                   ACTIVE      response.created, StartResponse
    IDLE        turn output (a server-made turn)  ACTIVE      response.created
    ACTIVE      TurnEnd                           IDLE        …done events, response.done
    ACTIVE      response.cancel / Interrupted     CANCELLING  …done events, response.done
                                                              (cancelled), CancelResponse
    CANCELLING  TurnEnd / turn_stopped()          IDLE        a queued response.create starts
    ACTIVE      response.create                   ACTIVE      error (code
                                                              conversation_already_has_active_response)
    CANCELLING  response.create                   CANCELLING  queued until the turn has stopped

In CANCELLING the late events of the cancelled turn are dropped (the client already has
``response.done``), except the stored message id, which truncation needs.

Output items. Assistant text opens one message item (``output_text`` or, when the
response speaks, ``output_audio`` with the text as its transcript) and ``AssistantMessage``
closes it. Client-declared function tools come in through ``on_function_call`` as
``function_call`` items; the response then ends and the client answers with a
``function_call_output`` item and ``response.create``. The agent's own tools run inside
Parley and show as ``parley.tool_call_*`` events; approvals as ``parley.approval_*``.

Input audio. ``input_audio_buffer.append`` is decoded to PCM16 (``FeedAudio``); the
voice session's VAD and turn-taking make the user's turns (``Vad`` and ``Transcript``
events become ``speech_started``/``stopped``, ``committed`` and the transcription
events). Without turn detection the client commits (``CommitAudio``).
"""

from __future__ import annotations

import base64
from enum import Enum
from typing import Any

from parley import events as pe
from parley.audio.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from parley.realtime import server_events as se
from parley.realtime.actions import (
    CancelResponse,
    ClearAudio,
    CommitAudio,
    ConfigureSession,
    DecideApproval,
    DeleteItem,
    FeedAudio,
    Output,
    Send,
    StartResponse,
    TruncateItem,
)
from parley.realtime.conversation import Conversation, Entry
from parley.realtime.ids import IdSource, RandomIds
from parley.realtime.response import Response
from parley.realtime.session_config import Modality, SessionConfig, format_rate
from parley.realtime.validate import ProtocolError
from parley.realtime.wire import (
    ApprovalDecision,
    AudioAppend,
    AudioClear,
    AudioCommit,
    ClientEvent,
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    ItemCreate,
    ItemDelete,
    ItemRetrieve,
    ItemTruncate,
    MessageItem,
    OutputAudioClear,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
)

MIN_COMMIT_MS = 100  # as OpenAI: a commit needs at least 100 ms of audio
_CLIENT_CODES = {"session_busy", "wrong_channel", "session_ended", "bad_message"}


class Phase(Enum):
    IDLE = "idle"
    ACTIVE = "active"
    CANCELLING = "cancelling"


TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.IDLE, "begin"): Phase.ACTIVE,
    (Phase.ACTIVE, "finish"): Phase.IDLE,
    (Phase.ACTIVE, "cancel"): Phase.CANCELLING,
    (Phase.CANCELLING, "stopped"): Phase.IDLE,
}


class IllegalTransition(RuntimeError):
    pass


def audio_ms(data_len: int, audio_format: str) -> float:
    """Milliseconds of ``data_len`` bytes in a Realtime format."""
    per_ms = format_rate(audio_format) / 1000 * (2 if audio_format == "audio/pcm" else 1)
    return data_len / per_ms


def decode_input(data: bytes, audio_format: str, param: str) -> bytes:
    """Client audio to PCM16, or ``ProtocolError`` when it cannot be in that format."""
    if data[:4] == b"RIFF":
        raise ProtocolError(
            "invalid_audio_format",
            f"'{param}' is a WAV file; send raw {audio_format} audio without a header.",
            param,
        )
    if audio_format == "audio/pcmu":
        return decode_ulaw(data)
    if audio_format == "audio/pcma":
        return decode_alaw(data)
    if len(data) % 2:
        raise ProtocolError(
            "invalid_audio_format",
            f"'{param}' holds {len(data)} bytes: audio/pcm is 16-bit samples, an even number.",
            param,
        )
    return data


class RealtimeSession:
    def __init__(
        self,
        session_id: str,
        config: SessionConfig | None = None,
        *,
        ids: IdSource | None = None,
        expires_at: int | None = None,
    ) -> None:
        self.session_id = session_id
        self.config = config or SessionConfig()
        self.ids = ids or RandomIds()
        self.expires_at = expires_at
        self.phase = Phase.IDLE
        self.conversation = Conversation()
        self.response: Response | None = None
        self.input_ms = 0.0  # all input audio so far (the clock of audio_start/end_ms)
        self.buffer_ms = 0.0  # uncommitted input audio
        self.speech_item: str | None = None  # announced by speech_started, not yet committed
        self.user_item: str | None = None  # the committed user item awaiting its transcript
        self.partial = ""  # its transcript so far
        self.pending_input: list[Entry] = []  # items added since the last response
        self.queued_create: ResponseCreate | None = None
        self._out: list[Output] = []

    # --- plumbing --------------------------------------------------------------------

    def _send(self, event: dict[str, Any]) -> None:
        self._out.append(Send(se.stamp(event, self.ids.new("event"))))

    def _flush(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def _move(self, trigger: str) -> None:
        nxt = TRANSITIONS.get((self.phase, trigger))
        if nxt is None:
            raise IllegalTransition(f"{trigger!r} in phase {self.phase.value}")
        self.phase = nxt

    def start(self) -> list[Output]:
        """``session.created``: the first event of every connection."""
        self._send(se.session_created(self.config.to_wire(self.session_id, self.expires_at)))
        return self._flush()

    def reject(self, err: ProtocolError) -> list[Output]:
        self._send(se.error(err))
        return self._flush()

    # --- client events ------------------------------------------------------------------

    def receive(self, event: ClientEvent) -> list[Output]:
        try:
            self._receive(event)
        except ProtocolError as err:
            self._out.clear()
            return self.reject(err.for_event(event.event_id))
        return self._flush()

    def _receive(self, event: ClientEvent) -> None:
        if isinstance(event, SessionUpdate):
            self.config = self.config.apply(event.session)
            wire = self.config.to_wire(self.session_id, self.expires_at)
            self._send(se.session_updated(wire, event.session.ignored))
            self._out.append(ConfigureSession(self.config))
        elif isinstance(event, AudioAppend):
            pcm = decode_input(event.audio, self.config.input_format, "audio")
            ms = audio_ms(len(event.audio), self.config.input_format)
            self.input_ms += ms
            self.buffer_ms += ms
            self._out.append(FeedAudio(pcm, self.config.input_rate))
        elif isinstance(event, AudioCommit):
            self._commit()
        elif isinstance(event, AudioClear):
            self.buffer_ms = 0.0
            self._send(se.buffer_cleared())
            self._out.append(ClearAudio())
        elif isinstance(event, ItemCreate):
            self._create_item(event)
        elif isinstance(event, ItemTruncate):
            self._truncate(event)
        elif isinstance(event, ItemDelete | ItemRetrieve):
            entry = self._entry(event.item_id, "item_id")
            if isinstance(event, ItemRetrieve):
                self._send(se.item_retrieved(se.item_to_wire(entry.with_text(), entry.item_id)))
                return
            self.conversation.delete(event.item_id)
            self.pending_input = [e for e in self.pending_input if e is not entry]
            self._send(se.item_deleted(event.item_id))
            self._out.append(DeleteItem(event.item_id, entry.message_id))
        elif isinstance(event, ResponseCreate):
            self._response_create(event)
        elif isinstance(event, ResponseCancel | OutputAudioClear):
            self._response_cancel(event)
        else:
            assert isinstance(event, ApprovalDecision)
            self._out.append(DecideApproval(event.tool_call_id, event.approved, event.reason))

    def _entry(self, item_id: str, param: str) -> Entry:
        entry = self.conversation.get(item_id)
        if entry is None:
            raise ProtocolError(
                "item_not_found", f"No item with id '{item_id}' in this conversation.", param
            )
        return entry

    def _commit(self) -> None:
        if self.buffer_ms < MIN_COMMIT_MS:
            raise ProtocolError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {self.buffer_ms:.2f}ms of audio.",
            )
        item_id = self._user_item()
        self._out.append(CommitAudio(item_id))

    def _user_item(self, item_id: str | None = None) -> str:
        """The user's spoken item: committed and added once, at the first need
        (``item_id``: the id already announced by ``speech_started``)."""
        if self.user_item is None:
            item_id = item_id or self.ids.new("item")
            self.user_item = item_id
            item = MessageItem(item_id, "user", (ContentPart("input_audio"),), "in_progress")
            entry = Entry(item_id, item)
            before = self.conversation.add(entry)
            self.buffer_ms = 0.0
            self._send(se.buffer_committed(item_id, before))
            self._send(se.item_added(se.item_to_wire(item, item_id), before))
        return self.user_item

    def _create_item(self, event: ItemCreate) -> None:
        item = event.item
        prev = event.previous_item_id
        if prev is not None and prev != "root" and prev not in self.conversation:
            self._entry(prev, "previous_item_id")
        if item.id is not None and item.id in self.conversation:
            raise ProtocolError(
                "duplicate_item_id", f"An item with id '{item.id}' already exists.", "item.id"
            )
        if isinstance(item, FunctionCallOutputItem) and not self.conversation.function_call(
            item.call_id
        ):
            raise ProtocolError(
                "item_not_found",
                f"No function_call item with call_id '{item.call_id}'.",
                "item.call_id",
            )
        if isinstance(item, MessageItem):
            for i, part in enumerate(item.content):
                if part.audio is not None:
                    decode_input(part.audio, self.config.input_format, f"item.content[{i}].audio")
        item_id = item.id or self.ids.new("item")
        entry = Entry(item_id, item, text=item.text if isinstance(item, MessageItem) else "")
        before = self.conversation.add(entry, None if prev == "root" else prev)
        wire = se.item_to_wire(item, item_id, "completed")
        self._send(se.item_added(wire, before))
        self._send(se.item_done(wire, before))
        self.pending_input.append(entry)

    def _truncate(self, event: ItemTruncate) -> None:
        entry = self._entry(event.item_id, "item_id")
        if not entry.is_assistant_audio or event.content_index != 0:
            raise ProtocolError(
                "invalid_value",
                "Only the audio part (content_index 0) of an assistant message can be truncated.",
                "item_id" if not entry.is_assistant_audio else "content_index",
            )
        if event.audio_end_ms > round(entry.audio_ms):
            raise ProtocolError(
                "invalid_value",
                f"audio_end_ms {event.audio_end_ms} is past the end of the item's audio "
                f"({entry.audio_ms:.0f}ms).",
                "audio_end_ms",
            )
        heard = entry.heard(event.audio_end_ms)
        entry.text = heard
        self._send(se.item_truncated(event.item_id, 0, event.audio_end_ms))
        self._out.append(TruncateItem(event.item_id, entry.message_id, event.audio_end_ms, heard))

    # --- responses ----------------------------------------------------------------------

    def _response_create(self, event: ResponseCreate) -> None:
        if self.phase is Phase.CANCELLING:
            self.queued_create = event
            return
        if self.phase is Phase.ACTIVE:
            assert self.response is not None
            raise ProtocolError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.response.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        p = event.params
        out_of_band = p.conversation == "none"
        response = self._begin(
            p.output_modalities, p.voice, p.output_format, p.metadata, out_of_band
        )
        if out_of_band:
            inputs = p.input or ()
        else:
            inputs = tuple(e.with_text() for e in self.pending_input) + (p.input or ())
            self.pending_input = []
        self._out.append(
            StartResponse(
                response.id,
                inputs,
                p.instructions if p.instructions is not None else self.config.instructions,
                response.modalities,
                p.tools if p.tools is not None else self.config.tools,
                p.tool_choice if p.tool_choice is not None else self.config.tool_choice,
                response.voice,
                out_of_band,
            )
        )

    def _begin(
        self,
        modalities: tuple[Modality, ...] | None = None,
        voice: str | None = None,
        output_format: str | None = None,
        metadata: Any = None,
        out_of_band: bool = False,
    ) -> Response:
        self._move("begin")
        response = Response(
            self.ids.new("resp"),
            tuple(modalities or self.config.output_modalities),
            voice or self.config.voice,
            output_format or self.config.output_format,
            metadata,
            out_of_band,
            self.session_id,
        )
        self.response = response
        self._send(se.response_created(response.to_wire("in_progress")))
        return response

    def _active(self) -> Response | None:
        """The response turn output belongs to: begun by the server if none runs, ``None``
        while a cancelled turn winds down."""
        if self.phase is Phase.CANCELLING:
            return None
        if self.phase is Phase.IDLE:
            return self._begin()
        return self.response

    def _finish(
        self,
        status: str,
        reason: str | None = None,
        error: Any = None,
        parley_reason: str | None = None,
    ) -> None:
        response = self.response
        assert response is not None
        self._close_output(response, "completed" if status == "completed" else "incomplete")
        wire = response.to_wire(status, reason, error)
        if parley_reason is not None:
            wire["status_details"]["parley_reason"] = parley_reason
        self._send(se.response_done(wire))
        self._send(se.rate_limits_updated([]))

    def _close_output(self, response: Response, status: str) -> None:
        entry = response.open_entry
        if entry is not None:
            for event in response.close(entry, status):
                self._send(event)

    def _response_cancel(self, event: ResponseCancel | OutputAudioClear) -> None:
        if isinstance(event, OutputAudioClear):
            self._send({"type": "output_audio_buffer.cleared", "response_id": None})
            if self.phase is Phase.ACTIVE:
                self._cancel("client_cancelled", notify=True)
            return
        if self.phase is not Phase.ACTIVE or (
            event.response_id is not None
            and self.response
            and event.response_id != self.response.id
        ):
            raise ProtocolError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found"
                + (f" with id '{event.response_id}'." if event.response_id else "."),
                "response_id" if event.response_id else None,
            )
        self._cancel("client_cancelled", notify=True)

    def _cancel(self, reason: str, *, notify: bool) -> None:
        assert self.response is not None
        self._finish("cancelled", reason)
        self._move("cancel")
        if notify:
            self._out.append(CancelResponse(self.response.id))

    def turn_stopped(self) -> list[Output]:
        """The loop's report that the cancelled turn has stopped."""
        try:
            self._stopped()
        except ProtocolError as err:  # pragma: no cover - IDLE accepts a create
            return self.reject(err)
        return self._flush()

    def _stopped(self) -> None:
        if self.phase is Phase.CANCELLING:
            self._move("stopped")
            queued, self.queued_create = self.queued_create, None
            if queued is not None:
                self._response_create(queued)

    # --- Parley events ----------------------------------------------------------------

    def on_event(self, event: pe.Event) -> list[Output]:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)
        return self._flush()

    def _on_vad(self, event: pe.Vad) -> None:
        if event.state == "speech_started":
            self.user_item = None
            self.partial = ""
            item_id = self.ids.new("item")
            self.speech_item = item_id
            self._send(se.speech_started(round(self.input_ms), item_id))
        else:
            item_id = self.speech_item or self.ids.new("item")
            self.speech_item = None
            self._send(se.speech_stopped(round(self.input_ms), item_id))
            self._user_item(item_id)

    def _on_transcript_partial(self, event: pe.Transcript) -> None:
        if event.final:
            self._on_transcript_final(event)
            return
        self._transcript_delta(event.text)

    def _transcript_delta(self, text: str) -> str:
        """The user item; sends the new part of its transcript (all of it if STT revised)."""
        item_id = self._user_item()
        delta = text[len(self.partial) :] if text.startswith(self.partial) else text
        self.partial = text
        if self.config.transcription is not None and delta:
            self._send(se.transcription_delta(item_id, delta))
        return item_id

    def _on_transcript_final(self, event: pe.Transcript) -> None:
        item_id = self._transcript_delta(event.text)
        entry = self.conversation.get(item_id)
        assert entry is not None
        entry.text = event.text
        if self.config.transcription is not None:
            seconds = self.input_ms / 1000
            self._send(se.transcription_completed(item_id, event.text, seconds))
        self._send(se.item_done(se.item_to_wire(entry.with_text("completed"), item_id), None))
        self.pending_input.append(entry)
        self.user_item = None
        self.partial = ""

    def _on_interrupted(self, event: pe.Interrupted) -> None:
        if self.phase is Phase.ACTIVE:
            self._cancel("turn_detected", notify=False)

    def _on_turn_end(self, event: pe.TurnEnd) -> None:
        if self.phase is Phase.CANCELLING:
            self._stopped()
            return
        if self.phase is Phase.IDLE:
            return
        if event.status == "completed":
            self._finish("completed")
        elif event.status == "awaiting_approval":
            self._finish("incomplete", parley_reason="awaiting_approval")
        elif event.status == "interrupted":
            self._finish("cancelled", "turn_detected")
        else:
            self._finish("failed", error={"type": "server_error", "code": "turn_failed"})
        self._move("finish")

    def _on_assistant_delta(self, event: pe.AssistantDelta) -> None:
        response = self._active()
        if response is None or not event.text:
            return
        for ev in response.text_delta(self.conversation, self.ids, event.text):
            self._send(ev)

    def _on_assistant_message(self, event: pe.AssistantMessage) -> None:
        if self.phase is Phase.CANCELLING:
            if self.response and self.response.last_entry:
                self.response.last_entry.message_id = event.message_id
            return
        response = self._active()
        assert response is not None
        if response.open_entry is None and event.text:
            for ev in response.text_delta(self.conversation, self.ids, event.text):
                self._send(ev)
        entry = response.open_entry
        if entry is not None:
            entry.message_id = event.message_id
            entry.text = event.text or entry.text
            self._close_output(response, "incomplete" if event.interrupted else "completed")

    def on_audio(self, pcm: bytes, text: str = "") -> list[Output]:
        """PCM16 at ``config.output_rate`` from TTS; ``text`` is what it says (if known)."""
        response = self._active()
        if response is None or "audio" not in response.modalities or not pcm:
            return self._flush()
        fmt = response.output_format
        data = {"audio/pcmu": encode_ulaw, "audio/pcma": encode_alaw}.get(fmt, bytes)(pcm)
        for ev in response.audio_delta(
            self.conversation,
            self.ids,
            base64.b64encode(data).decode(),
            audio_ms(len(data), fmt),
            text,
        ):
            self._send(ev)
        return self._flush()

    def on_function_call(self, call_id: str, name: str, arguments: str) -> list[Output]:
        """A client-declared function tool was called: one ``function_call`` item."""
        response = self._active()
        if response is not None:
            self._close_output(response, "completed")
            item = FunctionCallItem(None, call_id, name, arguments)
            for ev in response.function_call(self.conversation, self.ids, item):
                self._send(ev)
        return self._flush()

    def _extension(self, name: str, event: pe.Event) -> None:
        response_id = self.response.id if self.response and self.phase is Phase.ACTIVE else None
        self._send(se.extension(name, {"response_id": response_id, **event.fields()}))

    def _on_tool_call_started(self, event: pe.Event) -> None:
        if self._active() is not None:
            self._extension("tool_call_started", event)

    def _on_tool_call_completed(self, event: pe.Event) -> None:
        if self._active() is not None:
            self._extension("tool_call_completed", event)

    def _on_approval_requested(self, event: pe.Event) -> None:
        if self._active() is not None:
            self._extension("approval_requested", event)

    def _on_ui_op(self, event: pe.Event) -> None:
        if self._active() is not None:
            self._extension("ui_op", event)

    def _on_approval_resolved(self, event: pe.Event) -> None:
        self._extension("approval_resolved", event)

    def _on_transfer(self, event: pe.Event) -> None:
        self._extension("transfer", event)

    def _on_warning(self, event: pe.Event) -> None:
        self._extension("warning", event)

    def _on_go_away(self, event: pe.Event) -> None:
        self._extension("go_away", event)

    def _on_session_ended(self, event: pe.Event) -> None:
        self._extension("session_ended", event)

    def _on_error(self, event: pe.Error) -> None:
        kind = "invalid_request_error" if event.code in _CLIENT_CODES else "server_error"
        self._send(se.error(ProtocolError(event.code, event.message, type=kind)))
