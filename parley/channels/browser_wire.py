"""The browser ``/v1/voice`` wire format as a pure codec (PROTOCOL.md "Voice WebSocket").

Text frames in: ``parse_start`` reads the first frame into a ``StartRequest`` and
``parse_control`` every later one into a typed control message; both raise
``BadMessage`` (wire code ``bad_message``) for anything malformed, never another
exception: not JSON, not an object, nested deeper than ``MAX_DEPTH``, a wrong field
type, a value out of range, a NUL character (PostgreSQL cannot store it). Text
frames out: ``render`` turns an ``Event`` (or ``pong``/``ready``) into the frame's text.

No I/O, no clock, no asyncio: the socket loop (``channels/voice_ws.py``) owns the
socket and decides what a ``BadMessage`` costs (the error and go on; after a bad
start frame, the error and a 1008 close).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from parley.events import Error, Event

MAX_DEPTH = 64  # a frame nested deeper than this is refused before it is parsed
MAX_TEXT = 8000  # characters of a typed text, a UI action or a tool call id
RATES = range(8000, 48001)
MODES = ("hands_free", "push_to_talk")

__all__ = [
    "MAX_DEPTH",
    "Approval",
    "BadMessage",
    "ControlMessage",
    "End",
    "Interrupt",
    "Ping",
    "Played",
    "Ptt",
    "StartRequest",
    "Text",
    "UiAction",
    "parse_control",
    "parse_start",
    "render",
    "render_wire",
]


class BadMessage(ValueError):
    """A frame the codec refuses; ``to_event()`` is the ``error`` the client gets."""

    code = "bad_message"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_event(self) -> Error:
        return Error(self.code, self.message)


# --- messages ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartRequest:
    """The first frame: which session (an existing one, a new one for ``agent``, or
    a resume) and how audio flows."""

    sample_rate: int = 16000
    output_sample_rate: int = 16000
    mode: Literal["hands_free", "push_to_talk"] = "hands_free"
    transcripts: bool = True
    session_id: str | None = None
    session_token: str | None = None
    resume_token: str | None = None
    agent: str | None = None
    template_vars: dict[str, Any] = field(default_factory=dict)
    transfer_id: str | None = None  # a human joining a transfer (with the operator key)
    operator_key: str | None = None

    def session_fields(self) -> dict[str, Any]:
        """The fields that name the session, as the session resolver reads them."""
        fields = {
            "session_id": self.session_id,
            "session_token": self.session_token,
            "resume_token": self.resume_token,
            "agent": self.agent,
            "template_vars": self.template_vars,
        }
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Ptt:
    down: bool


@dataclass(frozen=True, slots=True)
class Text:
    text: str  # stripped, not empty


@dataclass(frozen=True, slots=True)
class UiAction:
    msg: str
    display: str | None


@dataclass(frozen=True, slots=True)
class Approval:
    tool_call_id: str
    approved: bool


@dataclass(frozen=True, slots=True)
class Interrupt:
    pass


@dataclass(frozen=True, slots=True)
class Played:
    ms: float


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class End:
    pass


ControlMessage = Ptt | Text | UiAction | Approval | Interrupt | Played | Ping | End


# --- parsing -----------------------------------------------------------------------


def parse_start(text: str | None) -> StartRequest:
    """The start frame (``text`` None: the first frame was binary)."""
    if text is None:
        raise BadMessage("the first frame must be a JSON 'start' message")
    obj = _object(text, "the first frame")
    if obj.get("type") != "start":
        raise BadMessage("the first frame must have type 'start'")
    rate = obj.get("sample_rate", 16000)
    if not _int(rate) or rate not in RATES:
        raise BadMessage("sample_rate must be an integer from 8000 to 48000")
    out_rate = obj.get("output_sample_rate", rate)
    if not _int(out_rate) or out_rate not in RATES:
        raise BadMessage("output_sample_rate must be from 8000 to 48000")
    mode = obj.get("mode", "hands_free")
    if mode not in MODES:
        raise BadMessage("mode must be hands_free or push_to_talk")
    template_vars = obj.get("template_vars")
    if template_vars is None:
        template_vars = {}
    if not isinstance(template_vars, dict):
        raise BadMessage("template_vars must be an object")
    _no_nul(template_vars, "template_vars")
    return StartRequest(
        sample_rate=rate,
        output_sample_rate=out_rate,
        mode=mode,
        transcripts=bool(obj.get("transcripts", True)),
        session_id=_optional_str(obj, "session_id"),
        session_token=_optional_str(obj, "session_token"),
        resume_token=_optional_str(obj, "resume_token"),
        agent=_optional_str(obj, "agent"),
        template_vars=template_vars,
        transfer_id=_optional_str(obj, "transfer_id"),
        operator_key=_optional_str(obj, "operator_key"),
    )


def parse_control(text: str) -> ControlMessage:
    """A text frame after the start frame."""
    obj = _object(text, "a text frame")
    kind = obj.get("type")
    if kind == "ptt" and obj.get("state") in ("down", "up"):
        return Ptt(obj["state"] == "down")
    if kind == "text" and _text(obj.get("text")):
        return Text(obj["text"].strip())
    if kind == "ui_action" and _text(obj.get("msg")) and _optional_text(obj.get("display")):
        return UiAction(obj["msg"], obj.get("display"))
    if kind == "approval" and _text(obj.get("tool_call_id")) and _bool(obj.get("approved")):
        return Approval(obj["tool_call_id"], obj["approved"])
    if kind == "interrupt":
        return Interrupt()
    if kind == "played" and _number(obj.get("ms")):
        return Played(float(obj["ms"]))
    if kind == "ping":
        return Ping()
    if kind == "end":
        return End()
    raise BadMessage(f"unknown or incomplete message {str(kind)[:40]!r}")


def _object(text: str, what: str) -> dict[str, Any]:
    if _too_deep(text):
        raise BadMessage(f"{what} is nested deeper than {MAX_DEPTH} levels")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise BadMessage(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise BadMessage("text frames must be JSON objects")
    return obj


def _too_deep(text: str) -> bool:
    """Whether JSON ``text`` opens more than ``MAX_DEPTH`` arrays/objects at once
    (brackets inside strings do not count). Cheap for ordinary frames: a frame with
    at most ``MAX_DEPTH`` opening brackets in all is not scanned."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _optional_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadMessage(f"{key} must be a string")
    if "\x00" in value:
        raise BadMessage(f"{key} must not contain NUL characters")
    return value


def _no_nul(value: Any, where: str) -> None:
    """Refuse NUL characters anywhere in ``value`` (keys and strings)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise BadMessage(f"{where} must not contain NUL characters")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _text(value: Any) -> bool:
    return (
        isinstance(value, str)
        and bool(value.strip())
        and len(value) <= MAX_TEXT
        and "\x00" not in value
    )


def _optional_text(value: Any) -> bool:
    return value is None or (
        isinstance(value, str) and len(value) <= MAX_TEXT and "\x00" not in value
    )


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value >= 0
        and value != float("inf")
    )


# --- rendering -----------------------------------------------------------------------


def render(event: Event) -> str:
    """The text frame of an event."""
    return render_wire(event.to_wire())


def render_wire(data: Mapping[str, Any]) -> str:
    """The text frame of a wire dict (``ready``, ``pong``)."""
    return json.dumps(data, ensure_ascii=False, default=str)


PONG = render_wire({"type": "pong"})
