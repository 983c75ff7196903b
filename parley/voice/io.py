"""The edges of a ``VoiceSession``: where its events and its audio go.

A transport (the browser WebSocket, a phone carrier's media stream, a Realtime-style
endpoint, WebRTC) gives the session two sinks and calls it with what arrives:

* an ``EventSink``: every ``parley.events.Event`` the session emits (transcripts,
  VAD, turn events, ``interrupted``, ``done``); the transport's codec renders them
  (browser JSON; a carrier drops text and maps ``Interrupted`` to ``clear``).
* an ``AudioOutput``: the agent's audio. It owns its pacing and knows what the user
  heard. ``parley.voice.pump.AudioPump`` is push-paced (real time plus a small lead,
  for the browser and carriers); ``parley.voice.unpaced.UnpacedOutput`` sends on
  ``enqueue`` for a client that paces itself and learns what was heard from the
  client's real-time playback or ``client_played``; a pull output (WebRTC) would hand
  out ``Playout.due_frames`` when its track asks for a frame.

The output tells the session (an ``OutputListener``) when the agent starts and stops
being audible and before each batch of audio goes out, so text can go in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from parley.events import Event

__all__ = ["AudioOutput", "EventSink", "OutputListener", "VoiceOptions"]


@dataclass(frozen=True)
class VoiceOptions:
    """How one voice attachment's audio flows."""

    input_rate: int = 16000
    output_rate: int = 16000
    mode: str = "hands_free"
    transcripts: bool = True
    channel: str = "voice"
    lead_ms: float = 200.0
    send_batch_ms: float = 60.0  # outbound audio per message while a response plays

    def __post_init__(self) -> None:
        if not 20.0 <= self.send_batch_ms <= self.lead_ms:
            raise ValueError(
                f"send_batch_ms must be between 20 and lead_ms ({self.lead_ms}), "
                f"got {self.send_batch_ms}"
            )


class EventSink(Protocol):
    async def emit(self, event: Event) -> None:
        """Deliver one event to the client (a client that left: drop it)."""
        ...


class OutputListener(Protocol):
    def speaking_changed(self, speaking: bool) -> None:
        """The agent became audible (first audio sent) or silent (all played)."""
        ...

    def first_audio(self, now: float) -> None:
        """Audio is about to go out (for the latency breakdown)."""
        ...

    async def before_audio(self) -> None:
        """A batch of audio is about to go out, or playback just ended."""
        ...


class AudioOutput(Protocol):
    """The agent's audio of one session, tagged with response generations: audio of
    an older generation than the newest is never delivered."""

    @property
    def speaking(self) -> bool:
        """The user can hear the agent now (sent and not yet all played)."""
        ...

    @property
    def busy(self) -> bool:
        """Audio is queued or playing."""
        ...

    def start(self, listener: OutputListener) -> None: ...

    def new_generation(self) -> int:
        """A new response begins: audio of earlier generations is dropped."""
        ...

    def enqueue(self, pcm: bytes, text: str, generation: int, *, extend: bool) -> bool:
        """Queue audio that speaks ``text`` (``extend``: more audio of the same text);
        False if ``generation`` is no longer current."""
        ...

    def clear(self, now: float) -> str:
        """Stop at once; returns the text the user heard of everything queued."""
        ...

    def pause(self, now: float) -> None:
        """Hold the current response where it is (keep what is queued); the client is
        told ``playback_paused``. A pause ends with ``resume``, ``clear`` or a new
        generation."""
        ...

    def resume(self, now: float) -> None:
        """Play on from where ``pause`` held the response."""
        ...

    def client_played(self, ms: float, now: float) -> None:
        """The client's playback position in the current response."""
        ...

    def drained(self, now: float) -> bool:
        """Everything queued has been played."""
        ...

    def played_secs(self, now: float) -> float:
        """Seconds of the current generation's audio the caller has played by ``now``."""
        ...

    async def close(self) -> None: ...
