"""One phone call's media stream as a sans-I/O state machine (any carrier codec).

Theory of operation
-------------------
The socket loop hands every text message to ``PhoneCall.receive`` and carries out the
actions it returns, in order; it hands every chunk of the agent's speech to ``speak``
and a barge-in to ``interrupt``. Nothing here reads a clock or touches a socket.

States (``CallState``)::

    AWAITING_START --start--> STREAMING --stop / hang_up--> ENDED
    AWAITING_START --stop / hang_up-----------------------> ENDED

``connected`` is accepted while awaiting start. Media, DTMF and marks before ``start``
or after the end are protocol errors (returned as ``ProtocolError`` actions, counted in
``errors``), as are messages for another stream id.

Audio: caller μ-law 8 kHz is decoded and resampled to ``input_rate`` (one resampler for
this direction, state kept across chunks; ``caller_resampler``). The agent's speech
(PCM16 at any rate) is resampled to 8 kHz by a second resampler, μ-law encoded, cut into
``frame_ms`` media messages, and followed by a **mark** named ``"<generation>.<n>"``.
The carrier echoes a mark when the audio before it has been played; so the text of a
chunk is *heard* when its mark comes back (``Heard``). ``interrupt`` sends ``clear``
(the carrier drops its queued audio) and turns every outstanding mark into a dropped
one: its echo, which the carrier sends after a ``clear``, means *not played* and yields
nothing.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from parley.audio.g711 import decode_ulaw, encode_ulaw
from parley.audio.resample import Quality, Resampler
from parley.audio.upsample import Upsampler2x
from parley.telephony.wire import (
    CarrierCodec,
    CarrierError,
    Connected,
    DtmfReceived,
    MarkEchoed,
    MediaReceived,
    ProtocolError,
    StreamEvent,
    StreamStarted,
    StreamStopped,
)

PHONE_RATE = 8000
ULAW_BYTES_PER_MS = PHONE_RATE // 1000


class CallState(enum.Enum):
    AWAITING_START = "awaiting_start"
    STREAMING = "streaming"
    ENDED = "ended"


# (state, what happened) -> next state. Anything else is an illegal transition.
TRANSITIONS: dict[tuple[CallState, str], CallState] = {
    (CallState.AWAITING_START, "start"): CallState.STREAMING,
    (CallState.AWAITING_START, "stop"): CallState.ENDED,
    (CallState.STREAMING, "stop"): CallState.ENDED,
}


class IllegalTransition(Exception):
    """A caller of ``PhoneCall`` asked for something its state does not allow."""


# --- actions (what the socket loop must do) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send this text message to the carrier."""

    text: str


@dataclass(frozen=True, slots=True)
class CallBegan:
    """The stream started: create or attach the session named by ``started.parameters``."""

    started: StreamStarted


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """Caller audio as PCM16 mono at ``sample_rate`` (may be empty while resampling)."""

    pcm: bytes
    sample_rate: int


@dataclass(frozen=True, slots=True)
class CallerPressed:
    """The caller pressed a key (DTMF)."""

    digit: str


@dataclass(frozen=True, slots=True)
class Heard:
    """A chunk of the agent's speech was played to the caller.

    ``text`` is that chunk's text, ``heard_text`` all text of ``generation`` heard so far,
    ``played_ms`` all of its audio played so far."""

    generation: int
    text: str
    heard_text: str
    played_ms: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The carrier stopped the stream (``stop``) or the loop hung up / lost the socket."""

    reason: str  # "stop" | "hang_up" | "disconnected"


Action = Send | CallBegan | CallerAudio | CallerPressed | Heard | CallEnded | ProtocolError


@dataclass(frozen=True, slots=True)
class Interruption:
    """What ``interrupt`` did: the messages to send and what the caller had heard."""

    sends: list[Send]
    generation: int | None
    heard_text: str
    played_ms: float


# --- the voice session, as the phone sees it ---------------------------------------------


class PhoneVoicePort(Protocol):
    """What the stream loop needs from the transport-neutral voice session.

    The loop maps ``CallerAudio`` → ``feed_audio``, ``CallerPressed`` → ``press``,
    ``Heard`` → ``heard``, ``CallEnded`` → ``end`` (``stop``/``hang_up`` →
    ``USER_ENDED``, a lost socket → ``DISCONNECTED``). The session's audio sink calls
    ``PhoneCall.speak`` for each chunk of speech and ``PhoneCall.interrupt`` on barge-in
    (its ``Interrupted`` event); text events are not sent to a phone.
    """

    async def feed_audio(self, pcm: bytes) -> None:
        """Caller audio, PCM16 at the session's input rate."""

    async def press(self, digit: str) -> None:
        """A DTMF key: a pending approval takes 1 = yes, 2 = no (``approval_answer``);
        otherwise the digit is user input (``dtmf_text``)."""

    def heard(self, generation: int, heard_text: str, played_ms: float) -> None:
        """Playback truth: the stored assistant message is cut to ``heard_text``."""

    async def end(self, reason: str) -> None:
        """The one termination path (``USER_ENDED`` / ``DISCONNECTED``)."""


APPROVAL_KEYS = {"1": True, "2": False}


def approval_answer(digit: str) -> bool | None:
    """ "Press 1 to confirm, 2 to cancel": the decision a key means, if any."""
    return APPROVAL_KEYS.get(digit)


def dtmf_text(digit: str) -> str:
    """The user input a key becomes when no approval is pending."""
    return f"[pressed {digit}]"


# --- the state machine ------------------------------------------------------------------


@dataclass(slots=True)
class _Chunk:
    generation: int
    text: str
    ms: float


@dataclass(slots=True)
class _Playback:
    """Heard text and played audio of one generation."""

    texts: list[str] = field(default_factory=list)
    played_ms: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(t for t in self.texts if t)


class CallerResampler(Protocol):
    def process(self, pcm: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def caller_resampler(input_rate: int, quality: Quality = "LQ") -> CallerResampler:
    """8 kHz caller audio → ``input_rate``. To 16 kHz: ``Upsampler2x`` (everything at
    once, < 6 ms delay; soxr would hold back up to ~60 ms); other rates: soxr."""
    if input_rate == 2 * PHONE_RATE:
        return Upsampler2x(PHONE_RATE)
    return Resampler(PHONE_RATE, input_rate, quality)


class PhoneCall:
    """The media stream of one call: codec + state + resamplers + mark bookkeeping."""

    def __init__(
        self,
        codec: CarrierCodec,
        *,
        input_rate: int = 16000,
        frame_ms: int = 20,
        input_quality: Quality = "LQ",
    ) -> None:
        if frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, got {frame_ms}")
        self.codec = codec
        self.state = CallState.AWAITING_START
        self.stream_id = ""
        self.started: StreamStarted | None = None
        self.input_rate = input_rate
        self.frame_bytes = frame_ms * ULAW_BYTES_PER_MS
        self.errors: Counter[str] = Counter()
        self.end_reason: str | None = None
        self._inbound = caller_resampler(input_rate, input_quality)
        self._outbound: Resampler | None = None
        self._pending: dict[str, _Chunk] = {}  # sent marks not yet echoed, in order
        self._dropped: set[str] = set()  # marks cleared before they were played
        self._playback: dict[int, _Playback] = {}
        self._mark_seq = 0

    # --- inbound -------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> list[Action]:
        """One message from the carrier → the actions it calls for."""
        event = self.codec.parse(text)
        if isinstance(event, ProtocolError):
            return [self._error(event)]
        return self.handle(event)

    def handle(self, event: StreamEvent) -> list[Action]:
        if isinstance(event, MediaReceived):
            return self._media(event)
        if isinstance(event, Connected):
            if self.state is not CallState.AWAITING_START:
                return [self._error(ProtocolError("bad_field", "connected after start"))]
            return []
        if isinstance(event, StreamStarted):
            if self.state is not CallState.AWAITING_START:
                return [self._error(ProtocolError("bad_field", "a second start on one stream"))]
            self._move("start")
            self.stream_id = event.stream_id
            self.started = event
            return [CallBegan(event)]
        if isinstance(event, StreamStopped):
            if self.state is CallState.ENDED:
                return [self._error(ProtocolError("after_stop", "stop after the end"))]
            if (problem := self._check_stream(event.stream_id)) is not None:
                return [problem]
            return self._end("stop")
        if isinstance(event, CarrierError):
            return [self._error(ProtocolError("carrier_error", f"{event.code}: {event.message}"))]
        problem = self._check_live(
            event.stream_id, "dtmf" if isinstance(event, DtmfReceived) else "mark"
        )
        if problem is not None:
            return [problem]
        if isinstance(event, DtmfReceived):
            return [CallerPressed(event.digit)]
        return self._mark(event)

    def _media(self, event: MediaReceived) -> list[Action]:
        problem = self._check_live(event.stream_id, "media")
        if problem is not None:
            return [problem]
        if event.track not in ("inbound", "inbound_track"):
            return []  # the agent's own audio echoed on a both-tracks stream
        pcm = self._inbound.process(decode_ulaw(event.payload))
        return [CallerAudio(pcm, self.input_rate)]

    def _mark(self, event: MarkEchoed) -> list[Action]:
        name = event.name
        if name in self._dropped:
            self._dropped.discard(name)
            return []  # echoed after a clear: that audio was not played
        chunk = self._pending.pop(name, None)
        if chunk is None:
            return [self._error(ProtocolError("unknown_mark", f"no mark named {name[:40]!r}"))]
        playback = self._playback.setdefault(chunk.generation, _Playback())
        playback.texts.append(chunk.text)
        playback.played_ms += chunk.ms
        return [Heard(chunk.generation, chunk.text, playback.text, playback.played_ms)]

    def _check_live(self, stream_id: str, what: str) -> ProtocolError | None:
        if self.state is CallState.AWAITING_START:
            return self._error(ProtocolError(f"{what}_before_start", f"{what} before start"))
        if self.state is CallState.ENDED:
            return self._error(ProtocolError("after_stop", f"{what} after the stream ended"))
        return self._check_stream(stream_id)

    def _check_stream(self, stream_id: str) -> ProtocolError | None:
        if self.stream_id and stream_id and stream_id != self.stream_id:
            return self._error(
                ProtocolError("wrong_stream", f"message for stream {stream_id[:40]!r}")
            )
        return None

    def _error(self, error: ProtocolError) -> ProtocolError:
        self.errors[error.code] += 1
        return error

    # --- outbound ------------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        """Speech was sent whose mark has not come back yet."""
        return bool(self._pending)

    def speak(self, pcm: bytes, sample_rate: int, text: str, generation: int) -> list[Send]:
        """One chunk of the agent's speech (e.g. a sentence): media messages + a mark."""
        if self.state is not CallState.STREAMING:
            raise IllegalTransition(f"cannot speak in state {self.state.value}")
        if self._outbound is None or self._outbound.in_rate != sample_rate:
            self._outbound = Resampler(sample_rate, PHONE_RATE, "LQ")
        narrow = self._outbound.process(pcm) + self._outbound.flush()
        ulaw = encode_ulaw(narrow)
        sends = [
            Send(self.codec.media(self.stream_id, ulaw[i : i + self.frame_bytes]))
            for i in range(0, len(ulaw), self.frame_bytes)
        ]
        self._mark_seq += 1
        name = f"{generation}.{self._mark_seq}"
        self._pending[name] = _Chunk(generation, text, len(ulaw) / ULAW_BYTES_PER_MS)
        sends.append(Send(self.codec.mark(self.stream_id, name)))
        return sends

    def interrupt(self) -> Interruption:
        """Barge-in: ``clear`` the carrier's queue; what was not yet played is dropped."""
        generation = next(iter(self._pending.values())).generation if self._pending else None
        sends: list[Send] = []
        if self._pending and self.state is CallState.STREAMING:
            sends.append(Send(self.codec.clear(self.stream_id)))
        self._dropped.update(self._pending)
        self._pending.clear()
        if self._outbound is not None:
            self._outbound.reset()
        playback = self._playback.get(generation, _Playback()) if generation is not None else None
        return Interruption(
            sends,
            generation,
            playback.text if playback else "",
            playback.played_ms if playback else 0.0,
        )

    def heard(self, generation: int) -> tuple[str, float]:
        """Text heard and audio played (ms) of one generation so far."""
        playback = self._playback.get(generation, _Playback())
        return playback.text, playback.played_ms

    # --- the end ---------------------------------------------------------------------------

    def hang_up(self, reason: str = "hang_up") -> list[Action]:
        """The loop ends the call (``hang_up``) or lost the socket (``disconnected``)."""
        if self.state is CallState.ENDED:
            return []
        return self._end(reason)

    def _end(self, reason: str) -> list[Action]:
        self._move("stop")
        self.end_reason = reason
        tail = self._inbound.flush()
        actions: list[Action] = [CallerAudio(tail, self.input_rate)] if tail else []
        actions.append(CallEnded(reason))
        return actions

    def _move(self, what: str) -> None:
        nxt = TRANSITIONS.get((self.state, what))
        if nxt is None:
            raise IllegalTransition(f"{what!r} is not allowed in state {self.state.value}")
        self.state = nxt
