"""Telnyx media streaming (WebSocket) as a pure codec, and Telnyx's webhook signature.

Inbound (Telnyx → us), snake_case JSON: ``connected`` (version), ``start`` (stream_id,
start.call_control_id, start.media_format {encoding PCMU, sample_rate 8000, channels},
start.custom_parameters when given), ``media`` (track, chunk, timestamp, base64 RTP
payload), ``dtmf`` (digit), ``mark`` (name), ``error`` (payload code/title/detail) and
``stop``. Outbound with bidirectional ``rtp`` mode: ``media`` (base64 PCMU), ``mark``,
``clear``; Telnyx takes them without a stream id.

Webhooks (``verify_telnyx_signature``): Ed25519 over ``"<timestamp>|<raw body>"`` with
the account's public key; headers ``telnyx-signature-ed25519`` (base64 signature) and
``telnyx-timestamp`` (Unix seconds), refused when older than ``tolerance_s``. Needs the
``cryptography`` package (``pip install 'parley[telnyx]'``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from parley.telephony.twilio_wire import DTMF_DIGITS, decode_payload, encode_payload
from parley.telephony.wire import (
    CarrierError,
    Connected,
    DtmfReceived,
    FieldProblem,
    MarkEchoed,
    MediaReceived,
    ProtocolError,
    StreamEvent,
    StreamStarted,
    StreamStopped,
    field_error,
    get_int,
    get_object,
    get_str,
    load_object,
    string_map,
)

PCMU = "PCMU"


class TelnyxCodec:
    """Telnyx JSON ⇄ ``parley.telephony.wire`` events. Stateless and pure."""

    name = "telnyx"

    def parse(self, text: str | bytes) -> StreamEvent | ProtocolError:
        data = load_object(text)
        if isinstance(data, ProtocolError):
            return data
        event = data.get("event")
        try:
            if event == "media":
                return self._media(data)
            if event == "start":
                return self._start(data)
            if event == "mark":
                mark = get_object(data, "mark")
                if isinstance(mark, ProtocolError):
                    return mark
                stream = get_str(data, "stream_id", "mark", default="")
                return MarkEchoed(stream, get_str(mark, "name", "mark"))
            if event == "dtmf":
                dtmf = get_object(data, "dtmf")
                if isinstance(dtmf, ProtocolError):
                    return dtmf
                digit = get_str(dtmf, "digit", "dtmf")
                if digit not in DTMF_DIGITS:
                    return ProtocolError("bad_field", f"dtmf.digit {digit[:8]!r} is not a key")
                return DtmfReceived(get_str(data, "stream_id", "dtmf", default=""), digit)
            if event == "stop":
                stop = data.get("stop")
                stop = stop if isinstance(stop, dict) else {}
                return StreamStopped(
                    get_str(data, "stream_id", "stop", default=""),
                    get_str(stop, "call_control_id", "stop", default=""),
                )
            if event == "error":
                payload = data.get("payload")
                payload = payload if isinstance(payload, dict) else {}
                return CarrierError(
                    get_str(data, "stream_id", "error", default=""),
                    get_str(payload, "code", "error", default=""),
                    get_str(payload, "detail", "error", default="")
                    or get_str(payload, "title", "error", default=""),
                )
            if event == "connected":
                return Connected("", get_str(data, "version", "connected", default=""))
        except FieldProblem as exc:
            return field_error(exc)
        return ProtocolError("unknown_event", f"unknown event {str(event)[:40]!r}")

    def _start(self, data: dict[str, Any]) -> StreamStarted | ProtocolError:
        start = get_object(data, "start")
        if isinstance(start, ProtocolError):
            return start
        fmt = start.get("media_format") or {"encoding": PCMU, "sample_rate": 8000, "channels": 1}
        if not isinstance(fmt, dict):
            return ProtocolError("bad_field", "start.media_format must be an object")
        encoding = get_str(fmt, "encoding", "start.media_format", default=PCMU)
        rate = get_int(fmt, "sample_rate", "start.media_format", default=8000)
        channels = get_int(fmt, "channels", "start.media_format", default=1)
        if encoding.upper() != PCMU or rate != 8000 or channels != 1:
            return ProtocolError(
                "unsupported_format",
                f"media format {encoding} {rate} Hz x{channels} is not PCMU 8 kHz mono",
            )
        return StreamStarted(
            stream_id=get_str(data, "stream_id", "start"),
            call_id=get_str(start, "call_control_id", "start"),
            account_id=get_str(start, "user_id", "start", default=""),
            parameters=_custom_parameters(start.get("custom_parameters")),
            encoding=PCMU,
            sample_rate=rate,
            channels=channels,
        )

    def _media(self, data: dict[str, Any]) -> MediaReceived | ProtocolError:
        media = get_object(data, "media")
        if isinstance(media, ProtocolError):
            return media
        payload = decode_payload(media.get("payload"), "media")
        if isinstance(payload, ProtocolError):
            return payload
        return MediaReceived(
            stream_id=get_str(data, "stream_id", "media", default=""),
            payload=payload,
            track=get_str(media, "track", "media", default="inbound"),
            chunk=get_int(media, "chunk", "media"),
            timestamp_ms=get_int(media, "timestamp", "media"),
        )

    # --- outbound -----------------------------------------------------------------------

    def media(self, stream_id: str, ulaw: bytes) -> str:
        return json.dumps({"event": "media", "media": {"payload": encode_payload(ulaw)}})

    def mark(self, stream_id: str, name: str) -> str:
        return json.dumps({"event": "mark", "mark": {"name": name}})

    def clear(self, stream_id: str) -> str:
        return json.dumps({"event": "clear"})


def _custom_parameters(value: Any) -> dict[str, str]:
    """An object, or a list of ``{"name", "value"}`` as the Call Control command takes."""
    if isinstance(value, list):
        out: dict[str, str] = {}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise FieldProblem("start.custom_parameters items need a name")
            out[item["name"]] = str(item.get("value", ""))
        return out
    return string_map(value, "start.custom_parameters")


# --- webhook signatures ------------------------------------------------------------------


class TelnyxSignatureError(Exception):
    """A Telnyx webhook signature is missing, malformed, wrong or too old."""


def verify_telnyx_signature(
    public_key_b64: str,
    body: bytes,
    signature_b64: str | None,
    timestamp: str | None,
    now: float,
    tolerance_s: float = 300.0,
) -> None:
    """Raise ``TelnyxSignatureError`` unless Telnyx signed ``timestamp|body``."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:  # pragma: no cover - depends on the installation
        raise TelnyxSignatureError(
            "Telnyx signatures need the cryptography package: pip install 'parley[telnyx]'"
        ) from None
    if not signature_b64 or not timestamp:
        raise TelnyxSignatureError("telnyx-signature-ed25519 and telnyx-timestamp are required")
    if not timestamp.isdigit():
        raise TelnyxSignatureError("telnyx-timestamp is not Unix seconds")
    if abs(now - int(timestamp)) > tolerance_s:
        raise TelnyxSignatureError("telnyx-timestamp is too far from now")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TelnyxSignatureError(f"malformed key or signature: {exc}") from None
    try:
        key.verify(signature, timestamp.encode() + b"|" + body)
    except InvalidSignature:
        raise TelnyxSignatureError("signature does not match") from None
