"""The response lifecycle of a Realtime session and the mapping of Parley's turn output
to it (pure). ``RealtimeSession`` owns one.

One enum phase and a transition table (the table is the documentation; an illegal move
raises ``IllegalTransition``):

    phase       trigger                                   next
    IDLE        begin (response.create, or turn output    ACTIVE
                of a server-made turn, e.g. after VAD)
    ACTIVE      finish (TurnEnd)                          IDLE
    ACTIVE      cancel (response.cancel, Interrupted)     CANCELLING
    CANCELLING  stopped (TurnEnd, or the loop's report)   IDLE

While CANCELLING the client already has ``response.done`` (cancelled): the late events
of the stopped turn are dropped, except the stored message id, which truncation needs.

Voiced sessions (a voice session speaks the responses; ``voiced=True``) differ in two
ways, both from the voice loop's contract in ``parley.events``: the brain's ``TurnEnd``
comes before the last audio is synthesized, so a speaking response ends at ``Done``
(the voice session's end of a response), keeping the turn's status until then; and
``Interrupted`` means the voice session has already stopped the turn, so the phase goes
straight back to IDLE (its only late event, the stored ``AssistantMessage`` with
``interrupted`` set, still links to the cancelled item).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from enum import Enum
from typing import Any

from parley import events as pe
from parley.audio.g711 import encode_alaw, encode_ulaw
from parley.realtime import server_events as se
from parley.realtime.conversation import Conversation, Entry
from parley.realtime.ids import IdSource
from parley.realtime.response import Response
from parley.realtime.session_config import Modality, SessionConfig, format_rate
from parley.realtime.wire import FunctionCallItem

Emit = Callable[[dict[str, Any]], None]


def audio_ms(data_len: int, audio_format: str) -> float:
    """Milliseconds of ``data_len`` bytes in a Realtime format."""
    per_ms = format_rate(audio_format) / 1000 * (2 if audio_format == "audio/pcm" else 1)
    return data_len / per_ms


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


class ResponseLifecycle:
    def __init__(
        self,
        session_id: str,
        conversation: Conversation,
        ids: IdSource,
        emit: Emit,
        config: Callable[[], SessionConfig],
    ) -> None:
        self.session_id = session_id
        self.conversation = conversation
        self.ids = ids
        self.emit = emit
        self.config = config
        self.phase = Phase.IDLE
        self.response: Response | None = None
        self.voiced = False
        self.ended_status: pe.TurnEnd | None = None  # a voiced response's TurnEnd, until Done
        # the item of the last cancelled response: its turn reports later (an
        # interrupted ``AssistantMessage``) which stored message it kept
        self.stopped_entry: Entry | None = None

    def _move(self, trigger: str) -> None:
        nxt = TRANSITIONS.get((self.phase, trigger))
        if nxt is None:
            raise IllegalTransition(f"{trigger!r} in phase {self.phase.value}")
        self.phase = nxt

    def begin(
        self,
        modalities: tuple[Modality, ...] | None = None,
        voice: str | None = None,
        output_format: str | None = None,
        metadata: Any = None,
        out_of_band: bool = False,
    ) -> Response:
        self._move("begin")
        config = self.config()
        response = Response(
            self.ids.new("resp"),
            tuple(modalities or config.output_modalities),
            voice or config.voice,
            output_format or config.output_format,
            metadata,
            out_of_band,
            self.session_id,
        )
        self.response = response
        self.ended_status = None
        self.emit(se.response_created(response.to_wire("in_progress")))
        self.emit(se.rate_limits_updated([]))  # as OpenAI: at the start of each response
        return response

    def active(self) -> Response | None:
        """The response turn output belongs to: begun by the server if none runs, ``None``
        while a cancelled turn winds down."""
        if self.phase is Phase.CANCELLING:
            return None
        if self.phase is Phase.IDLE:
            return self.begin()
        return self.response

    def _done(
        self, status: str, reason: str | None = None, error: Any = None, parley: str | None = None
    ) -> None:
        response = self.response
        assert response is not None
        self.close_output(response, "completed" if status == "completed" else "incomplete")
        wire = response.to_wire(status, reason, error)
        if parley is not None:
            wire["status_details"]["parley_reason"] = parley
        self.emit(se.response_done(wire))

    def close_output(self, response: Response, status: str) -> None:
        entry = response.open_entry
        if entry is not None:
            for event in response.close(entry, status):
                self.emit(event)

    def cancel(self, reason: str) -> str:
        """End the running response as cancelled; returns its id."""
        assert self.response is not None
        self.stopped_entry = self.response.last_entry
        self._done("cancelled", reason)
        self._move("cancel")
        return self.response.id

    def stopped(self) -> bool:
        """The cancelled turn has stopped; ``True`` if that ended a CANCELLING phase."""
        if self.phase is not Phase.CANCELLING:
            return False
        self._move("stopped")
        return True

    # --- turn output -----------------------------------------------------------------

    def turn_end(self, event: pe.TurnEnd) -> None:
        if self.phase is not Phase.ACTIVE:
            return
        if self.voiced and self.response is not None and self.response.speaks:
            self.ended_status = event  # its audio is still coming: finish at Done
            return
        self._finish(event)

    def done(self) -> None:
        """The voice session's end of a response (all its audio is out)."""
        if self.voiced and self.phase is Phase.ACTIVE:
            self._finish(self.ended_status or pe.TurnEnd("completed"))

    def fail(self) -> None:
        if self.phase is Phase.ACTIVE:
            self._finish(pe.TurnEnd("error"))

    def interrupted(self) -> None:
        if self.phase is Phase.ACTIVE:
            self.cancel("turn_detected")
            if self.voiced:
                self._move("stopped")

    def _finish(self, event: pe.TurnEnd) -> None:
        if event.status == "completed":
            self._done("completed")
        elif event.status == "awaiting_approval":
            self._done("incomplete", parley="awaiting_approval")
        elif event.status == "interrupted":
            self._done("cancelled", "turn_detected")
        else:
            self._done("failed", error={"type": "server_error", "code": "turn_failed"})
        self._move("finish")

    def text_delta(self, text: str) -> None:
        response = self.active()
        if response is not None and text:
            for ev in response.text_delta(self.conversation, self.ids, text):
                self.emit(ev)

    def message(self, event: pe.AssistantMessage) -> None:
        if event.interrupted and self.stopped_entry is not None:
            # what a cancelled turn kept, even once a newer response runs
            self.stopped_entry.message_id = event.message_id
            self.stopped_entry = None
            return
        if self.phase is Phase.CANCELLING or (self.phase is Phase.IDLE and event.interrupted):
            if self.response and self.response.last_entry:
                self.response.last_entry.message_id = event.message_id
            return
        response = self.active()
        assert response is not None
        if response.open_entry is None and event.text:
            self.text_delta(event.text)
        entry = response.open_entry
        if entry is None:
            return
        entry.message_id = event.message_id
        if response.speaks:
            return  # its audio may still come: the item closes with the response
        entry.text = event.text or entry.text
        self.close_output(response, "incomplete" if event.interrupted else "completed")

    def audio(self, pcm: bytes, text: str) -> None:
        """PCM16 at the output format's rate, encoded to that format."""
        response = self.active()
        if response is None or not response.speaks or not pcm:
            return
        fmt = response.output_format
        data = {"audio/pcmu": encode_ulaw, "audio/pcma": encode_alaw}.get(fmt, bytes)(pcm)
        b64 = base64.b64encode(data).decode()
        for ev in response.audio_delta(
            self.conversation, self.ids, b64, audio_ms(len(data), fmt), text
        ):
            self.emit(ev)

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        response = self.active()
        if response is not None:
            self.close_output(response, "completed")
            item = FunctionCallItem(None, call_id, name, arguments)
            for ev in response.function_call(self.conversation, self.ids, item):
                self.emit(ev)
