"""What the Realtime session state machine asks its socket loop to do (pure data).

``RealtimeSession`` methods return a list of outputs in order: ``Send`` (a server event
for the client) and the actions below, which the loop carries out against the voice
session and the brain. None of them is a request the loop may refuse silently: each
names the ids it concerns so that the loop can report back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from parley.realtime.session_config import SessionConfig
from parley.realtime.wire import Item


@dataclass(frozen=True, slots=True)
class Send:
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConfigureSession:
    """Apply formats, turn detection, voice and transcription to the voice session."""

    config: SessionConfig


@dataclass(frozen=True, slots=True)
class FeedAudio:
    pcm: bytes  # PCM16 LE mono, already decoded from G.711 when needed
    sample_rate: int


@dataclass(frozen=True, slots=True)
class CommitAudio:
    """End the user's utterance now (push-to-talk up); its transcript fills ``item_id``."""

    item_id: str


@dataclass(frozen=True, slots=True)
class ClearAudio:
    pass


@dataclass(frozen=True, slots=True)
class StartResponse:
    """Run one turn. ``input`` holds the items added since the last response (or the
    response's own ``input`` when ``out_of_band``); ``None`` fields keep the agent's."""

    response_id: str
    input: tuple[Item, ...]
    instructions: str | None
    output_modalities: tuple[Literal["text", "audio"], ...]
    tools: tuple[Mapping[str, Any], ...]
    tool_choice: str | Mapping[str, Any]
    voice: str | None
    out_of_band: bool = False


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """Stop the running turn; call ``RealtimeSession.turn_stopped`` once it has stopped."""

    response_id: str


@dataclass(frozen=True, slots=True)
class TruncateItem:
    """Cut the stored assistant message to what the client played."""

    item_id: str
    message_id: str | None  # the store's id, when the message has been stored
    audio_end_ms: int
    heard_text: str


@dataclass(frozen=True, slots=True)
class DeleteItem:
    item_id: str
    message_id: str | None


@dataclass(frozen=True, slots=True)
class DecideApproval:
    tool_call_id: str
    approved: bool
    reason: str | None


Action = (
    ConfigureSession
    | FeedAudio
    | CommitAudio
    | ClearAudio
    | StartResponse
    | CancelResponse
    | TruncateItem
    | DeleteItem
    | DecideApproval
)
Output = Send | Action
