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
from collections.abc import Mapping
from typing import Any

from parley.telephony.wire import (
    CarrierError,
    FieldProblem,
    Handler,
    JsonStreamCodec,
    ProtocolError,
    StreamStarted,
    get_object,
    get_str,
    string_map,
    ulaw_format,
)

PCMU = "PCMU"


class TelnyxCodec(JsonStreamCodec):
    """Telnyx JSON ⇄ ``parley.telephony.wire`` events. Stateless and pure."""

    name = "telnyx"
    stream_field = "stream_id"
    stream_default = ""  # only ``start`` must name the stream
    call_field = "call_control_id"
    stream_in_outbound = False

    def extra_events(self) -> Mapping[str, Handler]:
        return {"error": self._error}

    def parse_start(self, data: dict[str, Any]) -> StreamStarted | ProtocolError:
        start = get_object(data, "start")
        if isinstance(start, ProtocolError):
            return start
        fmt = ulaw_format(start, "media_format", "sample_rate", PCMU)
        if isinstance(fmt, ProtocolError):
            return fmt
        return StreamStarted(
            stream_id=get_str(data, "stream_id", "start"),
            call_id=get_str(start, "call_control_id", "start"),
            account_id=get_str(start, "user_id", "start", default=""),
            parameters=_custom_parameters(start.get("custom_parameters")),
            encoding=fmt.encoding,
            sample_rate=fmt.sample_rate,
            channels=fmt.channels,
        )

    def _error(self, data: dict[str, Any]) -> CarrierError:
        payload = data.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        return CarrierError(
            self.stream_of(data, "error"),
            get_str(payload, "code", "error", default=""),
            get_str(payload, "detail", "error", default="")
            or get_str(payload, "title", "error", default=""),
        )


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
