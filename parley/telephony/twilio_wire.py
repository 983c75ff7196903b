"""Twilio Media Streams, the WebSocket protocol of ``<Connect><Stream>``: a pure codec.

Inbound (Twilio → us), one JSON text message each: ``connected`` (protocol, version),
``start`` (streamSid, callSid, accountSid, tracks, customParameters, mediaFormat),
``media`` (track, chunk, timestamp, base64 μ-law 8 kHz payload), ``dtmf`` (digit),
``mark`` (the name of a mark we sent, echoed when the audio before it was played or
dropped by ``clear``) and ``stop``. Outbound: ``media`` (base64 μ-law), ``mark`` and
``clear``, each carrying the ``streamSid``.

``TwilioCodec.parse`` never raises: bad input becomes a ``ProtocolError`` value.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from parley.telephony.wire import (
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

MULAW = "audio/x-mulaw"
DTMF_DIGITS = frozenset("0123456789*#ABCD")


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


class TwilioCodec:
    """Twilio JSON ⇄ ``parley.telephony.wire`` events. Stateless and pure."""

    name = "twilio"

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
                return MarkEchoed(get_str(data, "streamSid", "mark"), get_str(mark, "name", "mark"))
            if event == "dtmf":
                return self._dtmf(data)
            if event == "stop":
                stop = data.get("stop")
                stop = stop if isinstance(stop, dict) else {}
                return StreamStopped(
                    get_str(data, "streamSid", "stop"), get_str(stop, "callSid", "stop", default="")
                )
            if event == "connected":
                return Connected(
                    get_str(data, "protocol", "connected", default=""),
                    get_str(data, "version", "connected", default=""),
                )
        except FieldProblem as exc:
            return field_error(exc)
        return ProtocolError("unknown_event", f"unknown event {str(event)[:40]!r}")

    def _start(self, data: dict[str, Any]) -> StreamStarted | ProtocolError:
        start = get_object(data, "start")
        if isinstance(start, ProtocolError):
            return start
        fmt = start.get("mediaFormat") or {"encoding": MULAW, "sampleRate": 8000, "channels": 1}
        if not isinstance(fmt, dict):
            return ProtocolError("bad_field", "start.mediaFormat must be an object")
        encoding = get_str(fmt, "encoding", "start.mediaFormat", default=MULAW)
        rate = get_int(fmt, "sampleRate", "start.mediaFormat", default=8000)
        channels = get_int(fmt, "channels", "start.mediaFormat", default=1)
        if encoding != MULAW or rate != 8000 or channels != 1:
            return ProtocolError(
                "unsupported_format",
                f"media format {encoding} {rate} Hz x{channels} is not μ-law 8 kHz mono",
            )
        tracks = start.get("tracks", ["inbound"])
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            return ProtocolError("bad_field", "start.tracks must be a list of strings")
        stream_sid = get_str(start, "streamSid", "start", default=data.get("streamSid"))
        return StreamStarted(
            stream_id=stream_sid,
            call_id=get_str(start, "callSid", "start"),
            account_id=get_str(start, "accountSid", "start", default=""),
            parameters=string_map(start.get("customParameters"), "start.customParameters"),
            encoding=encoding,
            sample_rate=rate,
            channels=channels,
            tracks=tuple(tracks),
        )

    def _media(self, data: dict[str, Any]) -> MediaReceived | ProtocolError:
        media = get_object(data, "media")
        if isinstance(media, ProtocolError):
            return media
        payload = decode_payload(media.get("payload"), "media")
        if isinstance(payload, ProtocolError):
            return payload
        return MediaReceived(
            stream_id=get_str(data, "streamSid", "media"),
            payload=payload,
            track=get_str(media, "track", "media", default="inbound"),
            chunk=get_int(media, "chunk", "media"),
            timestamp_ms=get_int(media, "timestamp", "media"),
        )

    def _dtmf(self, data: dict[str, Any]) -> DtmfReceived | ProtocolError:
        dtmf = get_object(data, "dtmf")
        if isinstance(dtmf, ProtocolError):
            return dtmf
        digit = get_str(dtmf, "digit", "dtmf")
        if digit not in DTMF_DIGITS:
            return ProtocolError("bad_field", f"dtmf.digit {digit[:8]!r} is not a key")
        return DtmfReceived(get_str(data, "streamSid", "dtmf"), digit)

    # --- outbound -----------------------------------------------------------------------

    def media(self, stream_id: str, ulaw: bytes) -> str:
        payload = encode_payload(ulaw)
        return json.dumps({"event": "media", "streamSid": stream_id, "media": {"payload": payload}})

    def mark(self, stream_id: str, name: str) -> str:
        return json.dumps({"event": "mark", "streamSid": stream_id, "mark": {"name": name}})

    def clear(self, stream_id: str) -> str:
        return json.dumps({"event": "clear", "streamSid": stream_id})
