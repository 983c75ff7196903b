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

Responses. At most one response runs at a time; its phases (IDLE → ACTIVE →
CANCELLING → IDLE) and their transition table are in ``response_lifecycle``. A
``response.create`` while one is ACTIVE is an error
(``conversation_already_has_active_response``); while a cancelled one winds down it is
queued and starts when the turn has stopped. Turn output while IDLE begins a response
(a turn the server started, e.g. after server VAD).

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

from typing import Any

from parley import events as pe
from parley.audio.g711 import decode_alaw, decode_ulaw
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
from parley.realtime.input_audio import MIN_COMMIT_MS, InputAudio
from parley.realtime.response import Response
from parley.realtime.response_lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    Phase,
    ResponseLifecycle,
    audio_ms,
)
from parley.realtime.session_config import SessionConfig
from parley.realtime.validate import ProtocolError
from parley.realtime.wire import (
    ApprovalDecision,
    AudioAppend,
    AudioClear,
    AudioCommit,
    ClientEvent,
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

__all__ = [
    "MIN_COMMIT_MS",
    "TRANSITIONS",
    "IllegalTransition",
    "Phase",
    "RealtimeSession",
    "audio_ms",
    "decode_input",
]

_CLIENT_CODES = {"session_busy", "wrong_channel", "session_ended", "bad_message"}
# Parley events shown as ``parley.<type>`` extension events; True: part of a response.
EXTENSIONS = {
    "tool_call_started": True,
    "tool_call_completed": True,
    "approval_requested": True,
    "ui_op": True,
    "approval_resolved": False,
    "transfer": False,
    "warning": False,
    "go_away": False,
    "session_ended": False,
}


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
        voiced: bool = False,
    ) -> None:
        """``voiced``: a voice session speaks this connection's responses (see
        ``response_lifecycle``)."""
        self.session_id = session_id
        self.config = config or SessionConfig()
        self.ids = ids or RandomIds()
        self.expires_at = expires_at
        self.conversation = Conversation()
        self.pending_input: list[Entry] = []  # items added since the last response
        self.input = InputAudio(self.conversation, self.ids, self._send, self._committed)
        self.responses = ResponseLifecycle(
            session_id, self.conversation, self.ids, self._send, lambda: self.config
        )
        self.responses.voiced = voiced
        self.queued_create: ResponseCreate | None = None
        self._out: list[Output] = []

    @property
    def phase(self) -> Phase:
        return self.responses.phase

    @property
    def response(self) -> Response | None:
        return self.responses.response

    @property
    def input_ms(self) -> float:
        return self.input.input_ms

    # --- plumbing --------------------------------------------------------------------

    def _send(self, event: dict[str, Any]) -> None:
        self._out.append(Send(se.stamp(event, self.ids.new("event"))))

    def _flush(self) -> list[Output]:
        out, self._out = self._out, []
        return out

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
            self.input.append(audio_ms(len(event.audio), self.config.input_format))
            self._out.append(FeedAudio(pcm, self.config.input_rate))
        elif isinstance(event, AudioCommit):
            self._out.append(CommitAudio(self.input.commit()))
        elif isinstance(event, AudioClear):
            self.input.clear()
            self._out.append(ClearAudio())
        elif isinstance(event, ItemCreate):
            self._create_item(event)
        elif isinstance(event, ItemTruncate):
            self._truncate(event)
        elif isinstance(event, ItemDelete | ItemRetrieve):
            self._delete_or_retrieve(event)
        elif isinstance(event, ResponseCreate):
            self._response_create(event)
        elif isinstance(event, ResponseCancel | OutputAudioClear):
            self._response_cancel(event)
        else:
            assert isinstance(event, ApprovalDecision)
            self._out.append(DecideApproval(event.tool_call_id, event.approved, event.reason))

    def _committed(self, entry: Entry) -> None:
        """A spoken user item: the server answers it itself with server VAD and
        ``create_response``; else it waits for the client's ``response.create``."""
        td = self.config.turn_detection
        if td is None or not td.create_response:
            self.pending_input.append(entry)

    def _entry(self, item_id: str, param: str) -> Entry:
        entry = self.conversation.get(item_id)
        if entry is None:
            raise ProtocolError(
                "item_not_found", f"No item with id '{item_id}' in this conversation.", param
            )
        return entry

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

    def _delete_or_retrieve(self, event: ItemDelete | ItemRetrieve) -> None:
        entry = self._entry(event.item_id, "item_id")
        if isinstance(event, ItemRetrieve):
            self._send(se.item_retrieved(se.item_to_wire(entry.with_text(), entry.item_id)))
            return
        self.conversation.delete(event.item_id)
        self.pending_input[:] = [e for e in self.pending_input if e is not entry]
        self._send(se.item_deleted(event.item_id))
        self._out.append(DeleteItem(event.item_id, entry.message_id))

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
        response = self.responses.begin(
            p.output_modalities, p.voice, p.output_format, p.metadata, out_of_band
        )
        if out_of_band:
            inputs = p.input or ()
        else:
            inputs = tuple(e.with_text() for e in self.pending_input) + (p.input or ())
            self.pending_input.clear()
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

    def _response_cancel(self, event: ResponseCancel | OutputAudioClear) -> None:
        if isinstance(event, OutputAudioClear):
            # the response whose audio is dropped: the running or the last one
            self._send(se.output_audio_cleared(self.response.id if self.response else ""))
            if self.phase is Phase.ACTIVE:
                self._out.append(CancelResponse(self.responses.cancel("client_cancelled")))
            return
        running = self.response.id if self.response and self.phase is Phase.ACTIVE else None
        if running is None or event.response_id not in (None, running):
            raise ProtocolError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found"
                + (f" with id '{event.response_id}'." if event.response_id else "."),
                "response_id" if event.response_id else None,
            )
        self._out.append(CancelResponse(self.responses.cancel("client_cancelled")))

    def turn_stopped(self) -> list[Output]:
        """The loop's report that the cancelled turn has stopped."""
        self._stopped()
        return self._flush()

    def _stopped(self) -> None:
        if self.responses.stopped():
            queued, self.queued_create = self.queued_create, None
            if queued is not None:
                self._response_create(queued)  # IDLE now: it cannot be refused

    # --- Parley events ----------------------------------------------------------------

    def on_event(self, event: pe.Event) -> list[Output]:
        """One event of the voice session or the brain, mapped to server events."""
        if isinstance(event, pe.Vad):
            if self.config.turn_detection is None:
                pass  # push-to-talk: the client's commit ends speech, as on OpenAI
            elif event.state == "speech_started":
                self.input.speech_started()
            else:
                self.input.speech_stopped(self.config.transcription is not None)
        elif isinstance(event, pe.Transcript):
            transcribe = self.config.transcription is not None
            self.input.transcript(event.text, event.final, transcribe)
        elif isinstance(event, pe.AssistantDelta):
            self.responses.text_delta(event.text)
        elif isinstance(event, pe.AssistantMessage):
            self.responses.message(event)
        elif isinstance(event, pe.ClientToolCall):
            self.responses.function_call(event.tool_call_id, event.name, event.arguments)
        elif isinstance(event, pe.Interrupted):
            self.responses.interrupted()  # the voice session has stopped the turn itself
        elif isinstance(event, pe.Done):
            self.responses.done()
        elif isinstance(event, pe.TurnEnd):
            if self.phase is Phase.CANCELLING:
                self._stopped()
            else:
                self.responses.turn_end(event)
        elif isinstance(event, pe.Error):
            kind = "invalid_request_error" if event.code in _CLIENT_CODES else "server_error"
            self._send(se.error(ProtocolError(event.code, event.message, type=kind)))
        elif event.type in EXTENSIONS:
            self._extension(event)
        return self._flush()

    def _extension(self, event: pe.Event) -> None:
        if EXTENSIONS[event.type] and self.responses.active() is None:
            return  # output of a cancelled turn
        running = self.response.id if self.response and self.phase is Phase.ACTIVE else None
        self._send(se.extension(event.type, {"response_id": running, **event.fields()}))

    def fail(self, code: str, message: str) -> list[Output]:
        """The socket loop could not run the response it was asked for: ``error``, and
        the response ends ``failed`` now (no voice session will end it)."""
        self._send(se.error(ProtocolError(code, message, type="server_error")))
        self.responses.fail()
        return self._flush()

    def on_audio(self, pcm: bytes, text: str = "") -> list[Output]:
        """PCM16 at ``config.output_rate`` from TTS; ``text`` is what it says (if known)."""
        self.responses.audio(pcm, text)
        return self._flush()

    def on_function_call(self, call_id: str, name: str, arguments: str) -> list[Output]:
        """A client-declared function tool was called: one ``function_call`` item."""
        self.responses.function_call(call_id, name, arguments)
        return self._flush()
