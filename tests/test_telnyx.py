"""The second carrier: Telnyx media streaming codec, its TeXML answer and Ed25519 signature.

Inbound messages follow Telnyx's "Media Streaming over WebSockets" documentation shapes.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from parley.app import create_app
from parley.channels import telephony_http
from parley.channels.telephony_http import PhoneGate, StreamRefused
from parley.config import Settings
from parley.telephony.call import CallBegan, CallEnded, CallerAudio, CallerPressed, Heard, PhoneCall
from parley.telephony.telnyx_wire import (
    TelnyxCodec,
    TelnyxSignatureError,
    verify_telnyx_signature,
)
from parley.telephony.wire import (
    CarrierError,
    Connected,
    DtmfReceived,
    MarkEchoed,
    MediaReceived,
    ProtocolError,
    StreamStarted,
    StreamStopped,
)
from parley.testing import FakeClock
from parley.testing.servers import serve_app
from tests.plugins.stores import sqlite_url

STREAM = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
CONTROL = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"
USER = "3E6F995F-85F7-4705-9741-53B116D28237"

CONNECTED = '{"event": "connected", "version": "1.0.0"}'
START = json.dumps(
    {
        "event": "start",
        "sequence_number": "1",
        "start": {
            "user_id": USER,
            "call_control_id": CONTROL,
            "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        },
        "stream_id": STREAM,
    }
)
STOP = json.dumps(
    {
        "event": "stop",
        "sequence_number": "5",
        "stop": {"user_id": USER, "call_control_id": CONTROL},
        "stream_id": STREAM,
    }
)
DTMF = json.dumps(
    {
        "event": "dtmf",
        "stream_id": STREAM,
        "occurred_at": "2022-09-07T14:42:53.513Z",
        "sequence_number": "2",
        "dtmf": {"digit": "1"},
    }
)
ERROR = json.dumps(
    {
        "event": "error",
        "sequence_number": "3",
        "stream_id": STREAM,
        "payload": {
            "code": 100002,
            "title": "unknown_error",
            "detail": "An unknown error occurred",
        },
    }
)


def media(payload: bytes, track: str = "inbound") -> str:
    return json.dumps(
        {
            "event": "media",
            "sequence_number": "4",
            "media": {
                "track": track,
                "chunk": "2",
                "timestamp": "5",
                "payload": base64.b64encode(payload).decode(),
            },
            "stream_id": STREAM,
        }
    )


def mark(name: str) -> str:
    return json.dumps(
        {"event": "mark", "sequence_number": "6", "stream_id": STREAM, "mark": {"name": name}}
    )


codec = TelnyxCodec()


def test_documented_messages_parse_to_the_same_events_as_twilio() -> None:
    assert codec.parse(CONNECTED) == Connected("", "1.0.0")
    assert codec.parse(START) == StreamStarted(
        stream_id=STREAM, call_id=CONTROL, account_id=USER, encoding="PCMU"
    )
    parsed = codec.parse(media(b"\x7f\xff"))
    assert parsed == MediaReceived(STREAM, b"\x7f\xff", "inbound", 2, 5)
    assert codec.parse(DTMF) == DtmfReceived(STREAM, "1")
    assert codec.parse(mark("1.1")) == MarkEchoed(STREAM, "1.1")
    assert codec.parse(STOP) == StreamStopped(STREAM, CONTROL)
    assert codec.parse(ERROR) == CarrierError(STREAM, "100002", "An unknown error occurred")


def test_custom_parameters_as_object_or_name_value_list() -> None:
    for given in ({"agent": "demo"}, [{"name": "agent", "value": "demo"}]):
        start = json.loads(START)
        start["start"]["custom_parameters"] = given
        parsed = codec.parse(json.dumps(start))
        assert isinstance(parsed, StreamStarted) and parsed.parameters == {"agent": "demo"}


def test_outbound_messages_have_telnyx_shapes() -> None:
    assert json.loads(codec.media(STREAM, b"\xff")) == {
        "event": "media",
        "media": {"payload": "/w=="},
    }
    assert json.loads(codec.mark(STREAM, "a")) == {"event": "mark", "mark": {"name": "a"}}
    assert json.loads(codec.clear(STREAM)) == {"event": "clear"}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("nope", "malformed_json"),
        ('{"event": "hello"}', "unknown_event"),
        ('{"event": "media", "media": {"payload": "!!"}}', "bad_base64"),
        ('{"event": "start", "stream_id": "s", "start": {}}', "missing_field"),
        (
            '{"event": "start", "stream_id": "s", "start": {"call_control_id": "c",'
            ' "media_format": {"encoding": "L16", "sample_rate": 16000}}}',
            "unsupported_format",
        ),
        ('{"event": "dtmf", "dtmf": {"digit": "x"}}', "bad_field"),
    ],
)
def test_bad_input_is_a_typed_error(text: str, code: str) -> None:
    result = codec.parse(text)
    assert isinstance(result, ProtocolError) and result.code == code


def test_the_same_call_machine_runs_a_telnyx_stream() -> None:
    call = PhoneCall(codec)
    [err] = call.receive(media(b"\xff" * 160))
    assert isinstance(err, ProtocolError) and err.code == "media_before_start"
    assert call.receive(CONNECTED) == []
    assert [type(a) for a in call.receive(START)] == [CallBegan]
    audio = [a for a in call.receive(media(b"\xff" * 160)) if isinstance(a, CallerAudio)]
    assert audio and audio[0].sample_rate == 16000
    assert call.receive(DTMF) == [CallerPressed("1")]
    [err] = call.receive(ERROR)
    assert isinstance(err, ProtocolError) and err.code == "carrier_error"
    speech = (np.sin(np.arange(3200) / 5) * 5000).astype("<i2").tobytes()
    call.speak(speech, 16000, "Hello.", generation=1)
    sends = call.speak(speech, 16000, "Again.", generation=1)
    assert json.loads(sends[-1].text) == {"event": "mark", "mark": {"name": "1.2"}}
    assert call.receive(mark("1.1")) == [Heard(1, "Hello.", "Hello.", 200.0)]
    cut = call.interrupt()
    assert [json.loads(s.text) for s in cut.sends] == [{"event": "clear"}]
    assert cut.heard_text == "Hello." and call.receive(mark("1.2")) == []
    assert call.receive(STOP)[-1] == CallEnded("stop")


# --- Ed25519 webhook signatures -----------------------------------------------------------


def keypair() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, base64.b64encode(public).decode()


def sign(private: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(private.sign(timestamp.encode() + b"|" + body)).decode()


def test_telnyx_signature_is_ed25519_over_timestamp_and_body() -> None:
    private, public = keypair()
    body = b'{"data": {"event_type": "call.initiated"}}'
    sig = sign(private, "1700000000", body)
    verify_telnyx_signature(public, body, sig, "1700000000", now=1700000100.0)
    with pytest.raises(TelnyxSignatureError, match="does not match"):
        verify_telnyx_signature(public, body + b" ", sig, "1700000000", now=1700000100.0)
    with pytest.raises(TelnyxSignatureError, match="does not match"):
        verify_telnyx_signature(public, body, sig, "1700000001", now=1700000100.0)
    with pytest.raises(TelnyxSignatureError, match="too far"):
        verify_telnyx_signature(public, body, sig, "1700000000", now=1700000400.0)
    with pytest.raises(TelnyxSignatureError, match="required"):
        verify_telnyx_signature(public, body, None, "1700000000", now=1700000100.0)
    with pytest.raises(TelnyxSignatureError, match="malformed"):
        verify_telnyx_signature(public, body, "***", "1700000000", now=1700000100.0)
    other = keypair()[1]
    with pytest.raises(TelnyxSignatureError, match="does not match"):
        verify_telnyx_signature(other, body, sig, "1700000000", now=1700000100.0)


async def test_texml_webhook_is_signed_and_answers_a_bidirectional_stream(tmp_path: Path) -> None:
    private, public = keypair()
    clock = FakeClock()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url(tmp_path),
        public_url="https://parley.example.com",
        telnyx_public_key=public,
    )
    app = create_app(settings, clock=clock)
    services = app.state.services
    telephony_http.install(app, services)
    form = urlencode({"CallSid": "c-1", "From": "+15550001111", "To": "+15552223333"}).encode()
    now = str(int(clock.now().timestamp()))
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as http:
        path = "/v1/telephony/telnyx/voice"
        unsigned = await http.post(path, content=form)
        assert unsigned.status_code == 403
        headers = {
            "telnyx-signature-ed25519": sign(private, now, form),
            "telnyx-timestamp": now,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        forged = await http.post(path, content=form + b"&x=1", headers=headers)
        assert forged.status_code == 403
        resp = await http.post(path, content=form, headers=headers)
        assert resp.status_code == 200, resp.text
    stream = ET.fromstring(resp.text).find("./Connect/Stream")
    assert stream is not None
    assert (
        stream.attrib["bidirectionalMode"] == "rtp"
        and stream.attrib["bidirectionalCodec"] == "PCMU"
    )
    url = urlsplit(stream.attrib["url"])
    assert (url.scheme, url.netloc, url.path) == (
        "wss",
        "parley.example.com",
        "/v1/telephony/telnyx/stream",
    )
    query = dict(parse_qsl(url.query))
    assert query["agent"] == "demo" and query["caller"] == "+15550001111"
    # Telnyx's start carries its call_control_id: the token is checked from the URL query
    started = StreamStarted(STREAM, CONTROL, USER)
    gate: PhoneGate = services.phone_gate
    claims = await gate.authorize(started, query=query, bind_call=False)
    assert claims.claims["caller"] == "+15550001111"
    with pytest.raises(StreamRefused, match="already used"):
        await gate.authorize(started, query=query, bind_call=False)
