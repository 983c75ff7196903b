"""The carrier-neutral vocabulary of a media stream: what a carrier's codec turns its
JSON messages into, and the error it reports for bad input.

Every carrier codec (``twilio_wire``, ``telnyx_wire``) parses one text message into
exactly one of these frozen events or a ``ProtocolError`` value; it never raises. The
stream's socket loop logs and counts a ``ProtocolError`` and goes on. Outbound, a codec
renders ``media``, ``mark`` and ``clear`` as text messages (``CarrierCodec``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

# A 20 ms media message of 8 kHz μ-law is 160 bytes (~216 base64 characters). Twilio
# sends those; anything far larger is not a carrier talking to us.
MAX_MESSAGE_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Connected:
    """The socket is up; the carrier says which protocol version it speaks."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """Metadata of the stream: ids, the caller's custom parameters, the audio format."""

    stream_id: str
    call_id: str
    account_id: str
    parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1
    tracks: tuple[str, ...] = ("inbound",)


@dataclass(frozen=True, slots=True)
class MediaReceived:
    """One chunk of caller audio, decoded from base64 (still μ-law)."""

    stream_id: str
    payload: bytes
    track: str = "inbound"
    chunk: int = 0
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    stream_id: str
    digit: str


@dataclass(frozen=True, slots=True)
class MarkEchoed:
    """The carrier reached a mark we sent: the audio before it was played, or dropped
    by a ``clear`` (the call state machine tells the two apart)."""

    stream_id: str
    name: str


@dataclass(frozen=True, slots=True)
class StreamStopped:
    stream_id: str
    call_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CarrierError:
    """The carrier reported an error on the stream (Telnyx ``error`` frames)."""

    stream_id: str
    code: str
    message: str


StreamEvent = (
    Connected
    | StreamStarted
    | MediaReceived
    | DtmfReceived
    | MarkEchoed
    | StreamStopped
    | CarrierError
)


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A message we cannot use. ``code`` is stable (for counters), ``message`` says why.

    codes: ``malformed_json``, ``not_an_object``, ``unknown_event``, ``missing_field``,
    ``bad_field``, ``bad_base64``, ``oversized``, ``media_before_start``,
    ``unsupported_format``, ``wrong_stream``, ``after_stop``.
    """

    code: str
    message: str


class CarrierCodec(Protocol):
    """One carrier's media-stream wire format. Pure: text in, events out, text out."""

    name: str

    def parse(self, text: str | bytes) -> StreamEvent | ProtocolError: ...

    def media(self, stream_id: str, ulaw: bytes) -> str: ...

    def mark(self, stream_id: str, name: str) -> str: ...

    def clear(self, stream_id: str) -> str: ...


# --- helpers shared by the codecs -------------------------------------------------------


def load_object(text: str | bytes) -> dict[str, Any] | ProtocolError:
    """The JSON object in one message, or why not."""
    if len(text) > MAX_MESSAGE_CHARS:
        return ProtocolError("oversized", f"message of {len(text)} bytes (max {MAX_MESSAGE_CHARS})")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return ProtocolError("malformed_json", f"not JSON: {exc}")
    if not isinstance(data, dict):
        return ProtocolError("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def get_object(data: dict[str, Any], key: str) -> dict[str, Any] | ProtocolError:
    value = data.get(key)
    if not isinstance(value, dict):
        return ProtocolError("missing_field", f"{key!r} must be an object")
    return value


def get_str(data: dict[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    """A string field; numbers are accepted as their text. Raises ``FieldProblem``."""
    value = data.get(key, default)
    if isinstance(value, bool) or value is None:
        raise FieldProblem(f"{where}.{key} is required")
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise FieldProblem(f"{where}.{key} must be a string")
    return value


def get_int(data: dict[str, Any], key: str, where: str, *, default: int = 0) -> int:
    """An integer carried as a number or a decimal string (carriers send both)."""
    value = data.get(key, default)
    if isinstance(value, bool):
        raise FieldProblem(f"{where}.{key} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise FieldProblem(f"{where}.{key} must be an integer, got {value!r}")


def string_map(value: Any, where: str) -> dict[str, str]:
    """Custom parameters: a flat object of strings (numbers become text)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldProblem(f"{where} must be an object")
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, (str, int, float)) and not isinstance(item, bool):
            out[str(key)] = str(item)
        else:
            raise FieldProblem(f"{where}.{key} must be a string")
    return out


class FieldProblem(Exception):
    """A field is absent or of the wrong type; a codec turns it into a ProtocolError."""


def field_error(exc: Exception) -> ProtocolError:
    return ProtocolError("missing_field" if "required" in str(exc) else "bad_field", str(exc))
