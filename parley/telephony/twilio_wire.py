"""Twilio Media Streams, the WebSocket protocol of ``<Connect><Stream>``: a pure codec.

Inbound (Twilio → us), one JSON text message each: ``connected`` (protocol, version),
``start`` (streamSid, callSid, accountSid, tracks, customParameters, mediaFormat),
``media`` (track, chunk, timestamp, base64 μ-law 8 kHz payload), ``dtmf`` (digit),
``mark`` (the name of a mark we sent, echoed when the audio before it was played or
dropped by ``clear``) and ``stop``. Outbound: ``media`` (base64 μ-law), ``mark`` and
``clear``, each carrying the ``streamSid``.

``TwilioCodec.parse`` never raises: bad input becomes a ``ProtocolError`` value. The
dispatch and the messages shared with other carriers are ``wire.JsonStreamCodec``'s.
"""

from __future__ import annotations

from typing import Any

from parley.telephony.wire import (
    JsonStreamCodec,
    ProtocolError,
    StreamStarted,
    get_object,
    get_str,
    string_map,
    ulaw_format,
)

MULAW = "audio/x-mulaw"


class TwilioCodec(JsonStreamCodec):
    """Twilio JSON ⇄ ``parley.telephony.wire`` events. Stateless and pure."""

    name = "twilio"
    stream_field = "streamSid"
    call_field = "callSid"

    def parse_start(self, data: dict[str, Any]) -> StreamStarted | ProtocolError:
        start = get_object(data, "start")
        if isinstance(start, ProtocolError):
            return start
        fmt = ulaw_format(start, "mediaFormat", "sampleRate", MULAW)
        if isinstance(fmt, ProtocolError):
            return fmt
        tracks = start.get("tracks", ["inbound"])
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            return ProtocolError("bad_field", "start.tracks must be a list of strings")
        stream_sid = get_str(start, "streamSid", "start", default=data.get("streamSid"))
        return StreamStarted(
            stream_id=stream_sid,
            call_id=get_str(start, "callSid", "start"),
            account_id=get_str(start, "accountSid", "start", default=""),
            parameters=string_map(start.get("customParameters"), "start.customParameters"),
            encoding=fmt.encoding,
            sample_rate=fmt.sample_rate,
            channels=fmt.channels,
            tracks=tuple(tracks),
        )
