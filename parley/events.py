"""The closed vocabulary of events that turns and voice connections emit.

A turn (chat, voice or phone) yields *turn events*; a voice connection adds a few
*voice events* around them. Every event is a frozen dataclass with a stable wire
``type`` (see PROTOCOL.md). Channels render them: SSE frames for chat, JSON text
frames for WebSockets, audio for TTS. Nothing here imports the rest of parley.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

ToolStatus = Literal["ok", "error", "denied"]
ApprovalStatus = Literal["approved", "denied"]
TurnStatus = Literal["completed", "interrupted", "awaiting_approval", "error"]
TransferStatus = Literal[
    "requested", "dialing", "briefing", "joined", "ended", "failed", "cancelled"
]
EndReason = Literal[
    "USER_ENDED", "OPERATOR_ENDED", "DISCONNECTED", "TIME_LIMIT", "SERVER_SHUTDOWN", "ERROR"
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class: ``type`` is the public wire name."""

    type: ClassVar[str] = "event"

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent on a WebSocket: ``{"type": name, **fields}``."""
        return {"type": self.type, **self.fields()}

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# --- turn events (every channel) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssistantDelta(Event):
    type: ClassVar[str] = "assistant_delta"
    text: str


@dataclass(frozen=True, slots=True)
class AssistantMessage(Event):
    type: ClassVar[str] = "assistant_message"
    message_id: str
    text: str
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class ToolCallStarted(Event):
    type: ClassVar[str] = "tool_call_started"
    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    filler: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallCompleted(Event):
    type: ClassVar[str] = "tool_call_completed"
    tool_call_id: str
    name: str
    status: ToolStatus
    result: Any


@dataclass(frozen=True, slots=True)
class ApprovalRequested(Event):
    type: ClassVar[str] = "approval_requested"
    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    prompt: str


@dataclass(frozen=True, slots=True)
class ApprovalResolved(Event):
    type: ClassVar[str] = "approval_resolved"
    tool_call_id: str
    status: ApprovalStatus
    decided_by: str | None = None


@dataclass(frozen=True, slots=True)
class ClientToolCall(Event):
    """The model called a tool the client declared (``/v1/realtime`` function tools):
    the turn ends there and the client answers with the tool's output."""

    type: ClassVar[str] = "client_tool_call"
    tool_call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True, slots=True)
class UiOp(Event):
    type: ClassVar[str] = "ui_op"
    op: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Transfer(Event):
    type: ClassVar[str] = "transfer"
    transfer_id: str
    status: TransferStatus
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HumanMessage(Event):
    """What the human agent of a joined transfer said or typed (never ``assistant_*``)."""

    type: ClassVar[str] = "human_message"
    text: str
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class TurnEnd(Event):
    type: ClassVar[str] = "turn_end"
    status: TurnStatus
    session_status: str = "active"


@dataclass(frozen=True, slots=True)
class Error(Event):
    type: ClassVar[str] = "error"
    code: str
    message: str


# --- voice events (voice and phone connections) ---------------------------------


@dataclass(frozen=True, slots=True)
class Vad(Event):
    type: ClassVar[str] = "vad"
    state: Literal["speech_started", "speech_stopped"]


@dataclass(frozen=True, slots=True)
class Transcript(Event):
    """A partial or final transcript; ``final`` picks the wire name."""

    type: ClassVar[str] = "transcript_partial"
    text: str
    final: bool = False

    def to_wire(self) -> dict[str, Any]:
        name = "transcript_final" if self.final else "transcript_partial"
        return {"type": name, "text": self.text}


@dataclass(frozen=True, slots=True)
class AssistantText(Event):
    type: ClassVar[str] = "assistant_text"
    status: Literal["start", "chunk", "end"]
    text: str = ""


@dataclass(frozen=True, slots=True)
class Interrupted(Event):
    """A real interruption: drop all queued playback (it may follow ``playback_paused``)."""

    type: ClassVar[str] = "interrupted"


@dataclass(frozen=True, slots=True)
class PlaybackPaused(Event):
    """The caller made a sound over the agent: hold playback, keeping its place."""

    type: ClassVar[str] = "playback_paused"


@dataclass(frozen=True, slots=True)
class PlaybackResumed(Event):
    """The sound was not an interruption: play on from where playback paused."""

    type: ClassVar[str] = "playback_resumed"


@dataclass(frozen=True, slots=True)
class Done(Event):
    type: ClassVar[str] = "done"
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionWarning(Event):
    """The session nears a limit (wire name ``warning``; not the builtin ``Warning``)."""

    type: ClassVar[str] = "warning"
    reason: str
    seconds_left: float


@dataclass(frozen=True, slots=True)
class GoAway(Event):
    type: ClassVar[str] = "go_away"
    reason: str
    resume_token: str


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    type: ClassVar[str] = "session_ended"
    reason: EndReason
    detail: str = ""


TURN_EVENTS: tuple[type[Event], ...] = (
    AssistantDelta,
    AssistantMessage,
    ToolCallStarted,
    ToolCallCompleted,
    ApprovalRequested,
    ApprovalResolved,
    UiOp,
    Transfer,
    TurnEnd,
    Error,
)
