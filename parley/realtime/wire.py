"""The Realtime client events as typed objects: a pure codec, no I/O, no clock.

``parse_client_event(text)`` turns one WebSocket text frame into one of the frozen
dataclasses below, or raises ``ProtocolError`` whose fields are exactly those of the
documented ``error`` server event (``type``, ``code``, ``message``, ``param``,
``event_id``). Every check that needs no session state happens here: JSON, event type,
required fields and their types, enum values, base64. Checks that need the session
(unknown item ids, audio length for the chosen format, a response already running)
happen in ``parley.realtime.session_state``.

Codes follow OpenAI's server where it has one (``unknown_parameter``,
``missing_required_parameter``, ``invalid_type``, ``invalid_value``,
``conversation_already_has_active_response``); the others are Parley's and are listed in
docs/REALTIME.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from parley.realtime.session_config import SessionPatch, parse_session
from parley.realtime.validate import ProtocolError, Reader

__all__ = [
    "ApprovalDecision",
    "AudioAppend",
    "AudioClear",
    "AudioCommit",
    "ClientEvent",
    "ContentPart",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "Item",
    "ItemCreate",
    "ItemDelete",
    "ItemRetrieve",
    "ItemTruncate",
    "MessageItem",
    "OutputAudioClear",
    "ProtocolError",
    "ResponseCancel",
    "ResponseCreate",
    "ResponseParams",
    "SessionUpdate",
    "decode_base64",
    "parse_client_event",
]

Role = Literal["user", "assistant", "system"]
ItemStatus = Literal["completed", "incomplete", "in_progress"]
Modality = Literal["text", "audio"]
PartType = Literal["input_text", "input_audio", "output_text", "output_audio"]

# --- conversation items ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContentPart:
    """One part of a message: ``input_text``/``input_audio`` (user, system) or
    ``output_text``/``output_audio`` (assistant). ``audio`` is the decoded bytes in the
    session's input format; Parley never echoes it back."""

    type: PartType
    text: str | None = None
    audio: bytes | None = None
    transcript: str | None = None


@dataclass(frozen=True, slots=True)
class MessageItem:
    id: str | None
    role: Role
    content: tuple[ContentPart, ...]
    status: ItemStatus = "completed"
    type: Literal["message"] = "message"

    @property
    def text(self) -> str:
        """The words of the message: texts and transcripts, in order."""
        words = [p.text if p.text is not None else (p.transcript or "") for p in self.content]
        return " ".join(w for w in words if w)


@dataclass(frozen=True, slots=True)
class FunctionCallItem:
    id: str | None
    call_id: str
    name: str
    arguments: str
    status: ItemStatus = "completed"
    type: Literal["function_call"] = "function_call"


@dataclass(frozen=True, slots=True)
class FunctionCallOutputItem:
    id: str | None
    call_id: str
    output: str
    status: ItemStatus = "completed"
    type: Literal["function_call_output"] = "function_call_output"


Item = MessageItem | FunctionCallItem | FunctionCallOutputItem

_PART_TYPES: dict[Role, tuple[str, ...]] = {
    "user": ("input_text", "input_audio"),
    "system": ("input_text",),
    "assistant": ("output_text", "output_audio"),
}


def _parse_part(r: Reader, role: Role) -> ContentPart:
    kind = cast(PartType, r.enum("type", _PART_TYPES[role], required=True))
    if kind in ("input_text", "output_text"):
        r.allow("text")
        return ContentPart(kind, text=r.string("text", required=True))
    r.allow("audio", "transcript")
    audio = r.string("audio")
    return ContentPart(
        kind,
        audio=None if audio is None else decode_base64(audio, r.path("audio")),
        transcript=r.string("transcript"),
    )


def parse_item(r: Reader) -> Item:
    """One ``conversation.item.create`` item (also the items of ``response.input``)."""
    kind = r.enum(
        "type",
        ("message", "function_call", "function_call_output", "item_reference"),
        required=True,
    )
    r.allow("id", "object", "status")
    item_id = r.string("id")
    r.enum("object", ("realtime.item",))
    r.enum("status", ("completed", "incomplete", "in_progress"))
    if kind == "message":
        r.allow("role", "content")
        role: Role = r.enum("role", ("user", "assistant", "system"), required=True)  # type: ignore[assignment]
        parts = tuple(_parse_part(p, role) for p in r.objects("content", required=True) or ())
        return MessageItem(item_id, role, parts)
    if kind == "function_call":
        r.allow("call_id", "name", "arguments")
        return FunctionCallItem(
            item_id,
            r.string("call_id") or "",
            r.string("name", required=True) or "",
            r.string("arguments", required=True) or "",
        )
    if kind == "function_call_output":
        r.allow("call_id", "output")
        return FunctionCallOutputItem(
            item_id,
            r.string("call_id", required=True) or "",
            r.string("output", required=True) or "",
        )
    raise ProtocolError(
        "invalid_value",
        "Parley does not support 'item_reference' items: send the item itself.",
        r.path("type"),
    )


# --- client events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    event_id: str | None
    session: SessionPatch


@dataclass(frozen=True, slots=True)
class AudioAppend:
    event_id: str | None
    audio: bytes  # decoded from base64, still in the session's input format


@dataclass(frozen=True, slots=True)
class AudioCommit:
    event_id: str | None


@dataclass(frozen=True, slots=True)
class AudioClear:
    event_id: str | None


@dataclass(frozen=True, slots=True)
class OutputAudioClear:
    event_id: str | None


@dataclass(frozen=True, slots=True)
class ItemCreate:
    event_id: str | None
    item: Item
    previous_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemTruncate:
    event_id: str | None
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ItemDelete:
    event_id: str | None
    item_id: str


@dataclass(frozen=True, slots=True)
class ItemRetrieve:
    event_id: str | None
    item_id: str


@dataclass(frozen=True, slots=True)
class ResponseParams:
    """Per-response overrides of ``response.create``; ``None`` = the session's value."""

    instructions: str | None = None
    output_modalities: tuple[Modality, ...] | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    voice: str | None = None
    output_format: str | None = None
    conversation: str = "auto"  # "none": out of band, nothing is added to the conversation
    input: tuple[Item, ...] | None = None
    metadata: Mapping[str, str] | None = None
    max_output_tokens: int | Literal["inf"] | None = None
    ignored: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ResponseCreate:
    event_id: str | None
    params: ResponseParams = field(default_factory=ResponseParams)


@dataclass(frozen=True, slots=True)
class ResponseCancel:
    event_id: str | None
    response_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """Parley extension ``parley.approval``: decide a pending tool call of the agent."""

    event_id: str | None
    tool_call_id: str
    approved: bool
    reason: str | None = None


ClientEvent = (
    SessionUpdate
    | AudioAppend
    | AudioCommit
    | AudioClear
    | OutputAudioClear
    | ItemCreate
    | ItemTruncate
    | ItemDelete
    | ItemRetrieve
    | ResponseCreate
    | ResponseCancel
    | ApprovalDecision
)


def decode_base64(text: str, param: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            "invalid_value", f"Invalid '{param}': expected base64-encoded audio.", param
        ) from None


def _response_params(r: Reader) -> ResponseParams:
    r.allow(
        "instructions",
        "output_modalities",
        "tools",
        "tool_choice",
        "audio",
        "conversation",
        "input",
        "metadata",
        "max_output_tokens",
        "prompt",
        "reasoning",
        "parallel_tool_calls",
    )
    ignored = tuple(r.path(k) for k in ("prompt", "reasoning", "parallel_tool_calls") if k in r)
    voice = output_format = None
    audio = r.object("audio")
    if audio is not None:
        audio.allow("output")
        output = audio.object("output")
        if output is not None:
            output.allow("voice", "format")
            voice = output.voice("voice")
            output_format = output.audio_format("format")
    conversation = r.string("conversation") or "auto"
    if conversation not in ("auto", "none"):
        raise ProtocolError(
            "invalid_value",
            "Parley has one conversation per session: 'conversation' is 'auto' or 'none'.",
            r.path("conversation"),
        )
    inputs = r.objects("input")
    metadata = r.object("metadata")
    return ResponseParams(
        instructions=r.string("instructions"),
        output_modalities=r.modalities("output_modalities"),
        tools=r.tools("tools"),
        tool_choice=r.tool_choice("tool_choice"),
        voice=voice,
        output_format=output_format,
        conversation=conversation,
        input=None if inputs is None else tuple(parse_item(i) for i in inputs),
        metadata=None if metadata is None else metadata.string_map(),
        max_output_tokens=r.max_tokens("max_output_tokens"),
        ignored=ignored,
    )


def _parse(kind: str, r: Reader, event_id: str | None) -> ClientEvent:
    if kind == "session.update":
        r.allow("session")
        session = r.object("session", required=True)
        assert session is not None
        return SessionUpdate(event_id, parse_session(session))
    if kind == "input_audio_buffer.append":
        r.allow("audio")
        return AudioAppend(event_id, decode_base64(r.string("audio", required=True) or "", "audio"))
    if kind == "conversation.item.create":
        r.allow("item", "previous_item_id")
        item = r.object("item", required=True)
        assert item is not None
        return ItemCreate(event_id, parse_item(item), r.string("previous_item_id"))
    if kind == "conversation.item.truncate":
        r.allow("item_id", "content_index", "audio_end_ms")
        return ItemTruncate(
            event_id,
            r.string("item_id", required=True) or "",
            r.integer("content_index", minimum=0, required=True) or 0,
            r.integer("audio_end_ms", minimum=0, required=True) or 0,
        )
    if kind in ("conversation.item.delete", "conversation.item.retrieve"):
        r.allow("item_id")
        item_id = r.string("item_id", required=True) or ""
        return (
            ItemDelete(event_id, item_id)
            if kind.endswith("delete")
            else ItemRetrieve(event_id, item_id)
        )
    if kind == "response.create":
        r.allow("response")
        params = r.object("response")
        return ResponseCreate(
            event_id, ResponseParams() if params is None else _response_params(params)
        )
    if kind == "response.cancel":
        r.allow("response_id")
        return ResponseCancel(event_id, r.string("response_id"))
    if kind == "parley.approval":
        r.allow("tool_call_id", "approved", "reason")
        return ApprovalDecision(
            event_id,
            r.string("tool_call_id", required=True) or "",
            bool(r.boolean("approved", required=True)),
            r.string("reason"),
        )
    if kind == "input_audio_buffer.commit":
        return AudioCommit(event_id)
    if kind == "input_audio_buffer.clear":
        return AudioClear(event_id)
    return OutputAudioClear(event_id)


CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "output_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "parley.approval",
)


def parse_client_event(frame: str | bytes) -> ClientEvent:
    """One text frame to a client event, or ``ProtocolError`` (see the module doc)."""
    try:
        data = json.loads(frame)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError("invalid_json", f"The event is not valid JSON: {exc}.", None) from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_type", "An event must be a JSON object.", None)
    raw_id = data.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) else None
    try:
        r = Reader(data, "")
        r.allow("type", "event_id")
        r.string("event_id")
        kind = r.enum("type", CLIENT_EVENT_TYPES, required=True)
        assert kind is not None
        event = _parse(kind, r, event_id)
        r.check_unknown()
        return event
    except ProtocolError as err:
        raise err.for_event(event_id) from None
