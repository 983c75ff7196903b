"""One small Protocol per engine kind (LLM, STT, TTS, VAD, end of turn) and their errors.

Exception hierarchy (converted at one boundary per adapter)::

    EngineError                 any engine failure; ``code`` is a stable error code
    ├── EngineUnavailable       missing model/extra/config: local, not retryable
    └── ProviderError           a remote provider failed; ``retryable`` says if a retry may help

Audio is PCM signed 16-bit little-endian mono everywhere; each engine states its
sample rate in its capabilities.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt


class EngineError(Exception):
    code = "engine_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class EngineUnavailable(EngineError):
    code = "engine_unavailable"


class ProviderError(EngineError):
    code = "provider_error"

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


# --- LLM --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A complete tool call from the model. ``error`` is set when the model's
    arguments were not a JSON object (``arguments`` is then ``{}``)."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""
    error: str | None = None


LLMChunk = TextDelta | ToolCallRequest


class LLM(Protocol):
    """A chat model. ``messages`` and ``tools`` use the OpenAI chat format."""

    def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> AsyncIterator[LLMChunk]:
        """Text deltas as they come, then the tool calls of the response (if any)."""
        ...


# --- STT ----------------------------------------------------------------------------

STTMode = Literal["default", "yes_no"]


@dataclass(frozen=True, slots=True)
class STTCapabilities:
    sample_rate: int = 16000
    streaming: bool = True  # partial hypotheses while the user speaks


class STTStream(Protocol):
    """One connection's recogniser; reused across utterances."""

    async def push(self, pcm: bytes) -> str | None:
        """Feed audio of the current utterance; returns a new partial or None."""
        ...

    async def finish(self) -> str:
        """End the utterance and return its final transcript (may be "")."""
        ...

    def cancel(self) -> None:
        """Drop the current utterance without a result."""

    def set_mode(self, mode: STTMode) -> None:
        """Switch vocabulary, e.g. a yes/no grammar while an approval is asked."""

    async def close(self) -> None: ...


class STT(Protocol):
    capabilities: STTCapabilities

    def open_stream(self) -> STTStream: ...

    async def transcribe(self, pcm: bytes) -> str:
        """One whole utterance at ``capabilities.sample_rate``."""
        ...


# --- TTS ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TTSCapabilities:
    sample_rate: int = 22050
    streaming: bool = True


class TTS(Protocol):
    capabilities: TTSCapabilities

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """PCM16 chunks at ``capabilities.sample_rate``. Closing the iterator early
        (``aclose``) aborts synthesis."""
        ...


# --- VAD --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VADCapabilities:
    sample_rate: int = 16000
    window_samples: int = 512


class VADStream(Protocol):
    """Per-connection VAD state. A stream may also offer ``async def
    process_async(pcm) -> float`` (the same result, possibly batched with other
    connections' audio); the voice loop uses it when present."""

    def process(self, pcm: bytes) -> float:
        """Feed 16 kHz PCM16 of any length; returns the latest speech probability."""
        ...

    def reset(self) -> None: ...


class VAD(Protocol):
    """Holds shared model weights; each connection opens its own stream state."""

    capabilities: VADCapabilities

    def open_stream(self) -> VADStream: ...


# --- end of turn --------------------------------------------------------------------------


class EndOfTurnModel(Protocol):
    """An audio end-of-turn model shared by every connection (Smart Turn v3's batcher)."""

    def score(self, audio: npt.NDArray[np.float32]) -> Awaitable[float]:
        """Probability that ``audio`` (16 kHz float in [-1, 1], the utterance so far)
        ends the speaker's turn; the work happens off the event loop."""
        ...


@dataclass(frozen=True, slots=True)
class EngineSet:
    """The engines a voice connection uses (``end_of_turn``: an audio end-of-turn
    model for ``turn_detection: smart``, when one is installed)."""

    stt: STT
    tts: TTS
    vad: VAD
    extras: dict[str, Any] = field(default_factory=dict)
    end_of_turn: EndOfTurnModel | None = None
