"""``wire.JsonStreamCodec``, the shape the carrier codecs share: a new carrier is its
field names and its ``start``; the common events and the outbound messages come free.

The carrier below is made up for the test (a Plivo-like camelCase dialect); Twilio's and
Telnyx's own messages are tested literally in ``test_twilio_wire`` and ``test_telnyx``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from parley.telephony.telnyx_wire import TelnyxCodec
from parley.telephony.twilio_wire import TwilioCodec
from parley.telephony.wire import (
    CarrierError,
    Connected,
    DtmfReceived,
    Handler,
    JsonStreamCodec,
    MarkEchoed,
    MediaFormat,
    MediaReceived,
    ProtocolError,
    StreamStarted,
    StreamStopped,
    get_object,
    get_str,
    ulaw_format,
)


class ThirdCodec(JsonStreamCodec):
    """A carrier that names its stream ``streamId`` and its call ``callId``."""

    name = "third"
    stream_field = "streamId"
    call_field = "callId"

    def parse_start(self, data: dict[str, Any]) -> StreamStarted | ProtocolError:
        start = get_object(data, "start")
        if isinstance(start, ProtocolError):
            return start
        fmt = ulaw_format(start, "mediaFormat", "sampleRate", "audio/x-mulaw")
        if isinstance(fmt, ProtocolError):
            return fmt
        return StreamStarted(
            self.stream_of(data, "start"), get_str(start, "callId", "start"), "", {}
        )

    def extra_events(self) -> Mapping[str, Handler]:
        return {"oops": lambda data: CarrierError(self.stream_of(data, "oops"), "1", "x")}


def test_a_third_carrier_gets_the_common_events_from_its_field_names() -> None:
    codec = ThirdCodec()
    start = {"event": "start", "streamId": "S1", "start": {"callId": "C1"}}
    assert codec.parse(json.dumps(start)) == StreamStarted("S1", "C1", "", {})
    media = {"event": "media", "streamId": "S1", "media": {"payload": "AAEC", "chunk": "3"}}
    assert codec.parse(json.dumps(media)) == MediaReceived("S1", b"\x00\x01\x02", chunk=3)
    mark = {"event": "mark", "streamId": "S1", "mark": {"name": "m1"}}
    assert codec.parse(json.dumps(mark)) == MarkEchoed("S1", "m1")
    dtmf = {"event": "dtmf", "streamId": "S1", "dtmf": {"digit": "#"}}
    assert codec.parse(json.dumps(dtmf)) == DtmfReceived("S1", "#")
    stop = {"event": "stop", "streamId": "S1", "stop": {"callId": "C1"}}
    assert codec.parse(json.dumps(stop)) == StreamStopped("S1", "C1")
    assert codec.parse('{"event": "connected", "version": "2"}') == Connected("", "2")
    assert codec.parse('{"event": "oops", "streamId": "S1"}') == CarrierError("S1", "1", "x")


def test_a_third_carrier_renders_the_outbound_messages_with_its_stream_field() -> None:
    codec = ThirdCodec()
    assert json.loads(codec.media("S1", b"\x00\x01\x02")) == {
        "event": "media",
        "streamId": "S1",
        "media": {"payload": "AAEC"},
    }
    assert json.loads(codec.mark("S1", "m1")) == {
        "event": "mark",
        "streamId": "S1",
        "mark": {"name": "m1"},
    }
    assert json.loads(codec.clear("S1")) == {"event": "clear", "streamId": "S1"}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('{"event": "media", "media": {"payload": "AAEC"}}', "missing_field"),  # no streamId
        ('{"event": ["media"]}', "unknown_event"),  # an unhashable event name
        ('{"event": "error", "streamId": "S1"}', "unknown_event"),  # Telnyx's, not ours
        ('{"event": "dtmf", "streamId": "S1", "dtmf": {"digit": "x"}}', "bad_field"),
        ('{"event": "media", "streamId": "S1", "media": {"payload": "A*"}}', "bad_base64"),
    ],
)
def test_a_third_carrier_reports_bad_input_as_values(message: str, code: str) -> None:
    result = ThirdCodec().parse(message)
    assert isinstance(result, ProtocolError) and result.code == code


def test_each_carrier_keeps_its_own_events_and_stream_rules() -> None:
    no_stream = '{"event": "mark", "mark": {"name": "m1"}}'
    assert TelnyxCodec().parse(no_stream) == MarkEchoed("", "m1")  # Telnyx may omit it
    twilio = TwilioCodec().parse(no_stream)
    assert isinstance(twilio, ProtocolError) and twilio.code == "missing_field"
    error = '{"event": "error", "payload": {"code": "100002", "title": "Unknown"}}'
    assert TelnyxCodec().parse(error) == CarrierError("", "100002", "Unknown")
    twilio_error = TwilioCodec().parse(error)
    assert isinstance(twilio_error, ProtocolError) and twilio_error.code == "unknown_event"
    assert "streamSid" in json.loads(TwilioCodec().clear("MZ1"))
    assert json.loads(TelnyxCodec().clear("ignored")) == {"event": "clear"}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (None, MediaFormat("PCMU", 8000, 1)),
        ({"encoding": "pcmu", "rate": "8000"}, MediaFormat("PCMU", 8000, 1)),
        ({"encoding": "L16", "rate": 8000}, "unsupported_format"),
        ({"encoding": "PCMU", "rate": 16000}, "unsupported_format"),
        ({"encoding": "PCMU", "channels": 2}, "unsupported_format"),
        ("PCMU", "bad_field"),
    ],
)
def test_ulaw_format_accepts_only_ulaw_8k_mono(fmt: object, expected: object) -> None:
    start: dict[str, Any] = {} if fmt is None else {"fmt": fmt}
    result = ulaw_format(start, "fmt", "rate", "PCMU")
    if isinstance(expected, str):
        assert isinstance(result, ProtocolError) and result.code == expected
    else:
        assert result == expected
