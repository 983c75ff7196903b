"""The carrier-neutral vocabulary of a media stream: what a carrier's codec turns its
JSON messages into, and the error it reports for bad input.

Every carrier codec (``twilio_wire``, ``telnyx_wire``) parses one text message into
exactly one of these frozen events or a ``ProtocolError`` value; it never raises. The
stream's socket loop logs and counts a ``ProtocolError`` and goes on. Outbound, a codec
renders ``media``, ``mark`` and ``clear`` as text messages (``CarrierCodec``).

``JsonStreamCodec`` is the shape the carriers share (JSON objects named by ``event``,
base64 μ-law media, ``mark``/``dtmf``/``stop``/``connected`` alike but for field
names): a carrier's codec names its fields and parses its own ``start``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

# A 20 ms media message of 8 kHz μ-law is 160 bytes (~216 base64 characters). Twilio
# sends those; anything far larger is not a carrier talking to us.
MAX_MESSAGE_CHARS = 64 * 1024
DTMF_DIGITS = frozenset("0123456789*#ABCD")


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


def decode_payload(payload: Any, where: str) -> bytes | ProtocolError:
    """Strict base64 (the alphabet and padding checked), as carriers send it."""
    if not isinstance(payload, str):
        return ProtocolError("missing_field", f"{where}.payload must be a base64 string")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        return ProtocolError("bad_base64", f"{where}.payload is not base64: {exc}")


def encode_payload(ulaw: bytes) -> str:
    return base64.b64encode(ulaw).decode("ascii")


@dataclass(frozen=True, slots=True)
class MediaFormat:
    encoding: str
    sample_rate: int
    channels: int


def ulaw_format(
    start: dict[str, Any], key: str, rate_key: str, encoding: str
) -> MediaFormat | ProtocolError:
    """``start[key]``, the stream's audio format: ``encoding`` (the carrier's name for
    μ-law, case-insensitive), 8 kHz, mono; absent means exactly that."""
    where = f"start.{key}"
    fmt = start.get(key) or {"encoding": encoding, rate_key: 8000, "channels": 1}
    if not isinstance(fmt, dict):
        return ProtocolError("bad_field", f"{where} must be an object")
    name = get_str(fmt, "encoding", where, default=encoding)
    rate = get_int(fmt, rate_key, where, default=8000)
    channels = get_int(fmt, "channels", where, default=1)
    if name.upper() != encoding.upper() or rate != 8000 or channels != 1:
        return ProtocolError(
            "unsupported_format",
            f"media format {name} {rate} Hz x{channels} is not {encoding} 8 kHz mono",
        )
    return MediaFormat(encoding, rate, channels)


# --- the shape every JSON carrier shares ---------------------------------------------------

Handler = Callable[[dict[str, Any]], StreamEvent | ProtocolError]


class JsonStreamCodec:
    """A ``CarrierCodec`` for a carrier whose messages are JSON objects named by ``event``.

    Parses ``connected``, ``media``, ``mark``, ``dtmf`` and ``stop`` and renders
    ``media``, ``mark`` and ``clear``; a carrier's subclass sets the field names below
    and ``parse_start`` (and may add events in ``extra_events``). Stateless and pure.
    """

    name: str
    stream_field: ClassVar[str]  # the top-level field naming the stream
    # its default where a carrier may leave it out (None: required on every message)
    stream_default: ClassVar[str | None] = None
    call_field: ClassVar[str]  # the call's id in ``stop``'s object
    stream_in_outbound: ClassVar[bool] = True  # our messages carry ``stream_field``

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {
            "media": self._media,
            "start": self.parse_start,
            "mark": self._mark,
            "dtmf": self._dtmf,
            "stop": self._stop,
            "connected": self._connected,
            **self.extra_events(),
        }

    def parse_start(self, data: dict[str, Any]) -> StreamStarted | ProtocolError:
        raise NotImplementedError

    def extra_events(self) -> Mapping[str, Handler]:
        """Events beyond the common ones (e.g. a carrier's ``error``)."""
        return {}

    def parse(self, text: str | bytes) -> StreamEvent | ProtocolError:
        data = load_object(text)
        if isinstance(data, ProtocolError):
            return data
        event = data.get("event")
        handler = self._handlers.get(event) if isinstance(event, str) else None
        if handler is None:
            return ProtocolError("unknown_event", f"unknown event {str(event)[:40]!r}")
        try:
            return handler(data)
        except FieldProblem as exc:
            return field_error(exc)

    def stream_of(self, data: dict[str, Any], where: str) -> str:
        return get_str(data, self.stream_field, where, default=self.stream_default)

    def _media(self, data: dict[str, Any]) -> MediaReceived | ProtocolError:
        media = get_object(data, "media")
        if isinstance(media, ProtocolError):
            return media
        payload = decode_payload(media.get("payload"), "media")
        if isinstance(payload, ProtocolError):
            return payload
        return MediaReceived(
            stream_id=self.stream_of(data, "media"),
            payload=payload,
            track=get_str(media, "track", "media", default="inbound"),
            chunk=get_int(media, "chunk", "media"),
            timestamp_ms=get_int(media, "timestamp", "media"),
        )

    def _mark(self, data: dict[str, Any]) -> MarkEchoed | ProtocolError:
        mark = get_object(data, "mark")
        if isinstance(mark, ProtocolError):
            return mark
        return MarkEchoed(self.stream_of(data, "mark"), get_str(mark, "name", "mark"))

    def _dtmf(self, data: dict[str, Any]) -> DtmfReceived | ProtocolError:
        dtmf = get_object(data, "dtmf")
        if isinstance(dtmf, ProtocolError):
            return dtmf
        digit = get_str(dtmf, "digit", "dtmf")
        if digit not in DTMF_DIGITS:
            return ProtocolError("bad_field", f"dtmf.digit {digit[:8]!r} is not a key")
        return DtmfReceived(self.stream_of(data, "dtmf"), digit)

    def _stop(self, data: dict[str, Any]) -> StreamStopped:
        stop = data.get("stop")
        stop = stop if isinstance(stop, dict) else {}
        return StreamStopped(
            self.stream_of(data, "stop"), get_str(stop, self.call_field, "stop", default="")
        )

    def _connected(self, data: dict[str, Any]) -> Connected:
        return Connected(
            get_str(data, "protocol", "connected", default=""),
            get_str(data, "version", "connected", default=""),
        )

    # --- outbound -----------------------------------------------------------------------

    def _message(self, event: str, stream_id: str, **body: Any) -> str:
        head: dict[str, Any] = {"event": event}
        if self.stream_in_outbound:
            head[self.stream_field] = stream_id
        return json.dumps({**head, **body})

    def media(self, stream_id: str, ulaw: bytes) -> str:
        return self._message("media", stream_id, media={"payload": encode_payload(ulaw)})

    def mark(self, stream_id: str, name: str) -> str:
        return self._message("mark", stream_id, mark={"name": name})

    def clear(self, stream_id: str) -> str:
        return self._message("clear", stream_id)
