"""The seam for a speech-to-speech upstream (Gemini Live, OpenAI Realtime).

One small Protocol, :class:`SpeechToSpeech`, and a closed vocabulary of frozen event
dataclasses it yields. The caller's audio goes in as 16 kHz PCM16 mono; the model's audio
comes out as 24 kHz PCM16 mono. Each adapter converts its provider's wire events into this
vocabulary at one boundary (its wire codec), so the voice session never sees JSON.

Errors (all subclasses of :class:`S2SError`):

- :class:`S2SConfigError` — local, at construction: a missing API key or package, a bad URL.
  Never retried.
- Everything remote (refused, dropped, rate-limited, rejected setup) is *not* raised: it
  becomes an :class:`UpstreamError` event with ``retryable`` telling whether the adapter
  will try again by itself (``True``) or the session cannot go on (``False``; the event
  stream then ends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

INPUT_RATE = 16_000
OUTPUT_RATE = 24_000


class S2SError(Exception):
    """Base of every speech-to-speech error."""


class S2SConfigError(S2SError):
    """A local configuration problem found at construction (missing key, package, bad URL)."""


# --- what goes up --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolDeclaration:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True, slots=True)
class HistoryTurn:
    """One stored message used to seed (or rebuild) an upstream session."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True, slots=True)
class S2SConfig:
    """Everything an upstream session is opened with."""

    instructions: str = ""
    model: str | None = None  # None: the adapter's default
    voice: str | None = None  # None: the provider's default
    tools: tuple[ToolDeclaration, ...] = ()
    history: tuple[HistoryTurn, ...] = ()
    input_transcription: bool = True
    output_transcription: bool = True
    server_vad: bool = True
    # Gemini contextWindowCompression (sliding window); ignored by OpenAI.
    compression: bool = True
    compression_trigger_tokens: int | None = None
    compression_target_tokens: int | None = None
    transcription_model: str = "gpt-4o-mini-transcribe"  # OpenAI only


@dataclass(frozen=True, slots=True)
class Capabilities:
    truncate: bool  # truncate(item_id, audio_end_ms) tells the model what was heard
    resumable: bool  # the provider hands out session-resumption handles
    speech_events: bool = False  # SpeechStarted/SpeechStopped come from its VAD


# --- what comes down -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioOut:
    """Model speech, 24 kHz PCM16 mono. ``item_id`` names it for :meth:`truncate`."""

    pcm: bytes
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """What the caller said: partial pieces while speaking, ``final`` once per turn."""

    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class OutputTranscript:
    """What the model says: ``final=False`` carries a delta, ``final=True`` the whole text."""

    text: str
    final: bool
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The provider detected barge-in: flush playout now."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The provider's VAD heard the caller start speaking (OpenAI only; Gemini sends
    no such signal under automatic activity detection)."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The provider's VAD heard the caller stop speaking (OpenAI only)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallCancelled:
    call_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TurnComplete:
    """The model finished (or abandoned) its answer."""


@dataclass(frozen=True, slots=True)
class UpstreamError:
    message: str
    retryable: bool
    code: str | None = None


@dataclass(frozen=True, slots=True)
class GoAway:
    """Internal: the provider will close this connection in ``time_left_s``."""

    time_left_s: float


@dataclass(frozen=True, slots=True)
class ResumptionHandle:
    """Internal: the newest handle to resume the provider's session with."""

    handle: str


S2SEvent = (
    AudioOut
    | InputTranscript
    | OutputTranscript
    | Interrupted
    | SpeechStarted
    | SpeechStopped
    | ToolCall
    | ToolCallCancelled
    | TurnComplete
    | UpstreamError
    | GoAway
    | ResumptionHandle
)


class SpeechToSpeech(Protocol):
    """A speech-to-speech upstream. ``connect`` once, then ``events()`` until it ends."""

    capabilities: Capabilities

    async def connect(self, config: S2SConfig) -> None: ...

    def events(self) -> AsyncIterator[S2SEvent]: ...

    async def send_audio(self, pcm16k: bytes) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def send_tool_result(self, call_id: str, result: Mapping[str, Any]) -> None: ...

    async def truncate(self, item_id: str, audio_end_ms: int) -> None: ...

    async def close(self) -> None: ...
