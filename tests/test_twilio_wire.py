"""The Twilio Media Streams codec and the phone call state machine, message by message.

The inbound messages are the examples of Twilio's "Media Streams - WebSocket Messages"
documentation (ids and payloads as printed there, whitespace aside).
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from parley.audio.g711 import encode_ulaw
from parley.telephony.call import (
    CallBegan,
    CallEnded,
    CallerAudio,
    CallerPressed,
    CallState,
    Heard,
    IllegalTransition,
    PhoneCall,
    Send,
    approval_answer,
)
from parley.telephony.twilio_wire import TwilioCodec
from parley.telephony.wire import (
    MAX_MESSAGE_CHARS,
    Connected,
    DtmfReceived,
    MarkEchoed,
    MediaReceived,
    ProtocolError,
    StreamStarted,
    StreamStopped,
)

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA362bdf5e8a4b3b3f9e4f2a9b5f31c5b0"
ACCOUNT = "AC123456789abcdef0123456789abcdef"

DOC_CONNECTED = '{"event": "connected", "protocol": "Call", "version": "1.0.0"}'
DOC_START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": ACCOUNT,
            "streamSid": SID,
            "callSid": CALL,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
        },
        "streamSid": SID,
    }
)
DOC_PAYLOAD = "no+JhoaJjpzSHxAKBgYJDhtEopDw"  # the start of the documented payload
DOC_MEDIA = json.dumps(
    {
        "event": "media",
        "sequenceNumber": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": DOC_PAYLOAD},
        "streamSid": SID,
    }
)
DOC_DTMF = json.dumps(
    {
        "event": "dtmf",
        "streamSid": SID,
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
)
DOC_STOP = json.dumps(
    {
        "event": "stop",
        "sequenceNumber": "5",
        "stop": {"accountSid": ACCOUNT, "callSid": CALL},
        "streamSid": SID,
    }
)


def doc_mark(name: str) -> str:
    return json.dumps(
        {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": name}}
    )


codec = TwilioCodec()


# --- the codec -------------------------------------------------------------------------


def test_documented_inbound_messages_parse_to_typed_events() -> None:
    assert codec.parse(DOC_CONNECTED) == Connected("Call", "1.0.0")
    start = codec.parse(DOC_START)
    assert start == StreamStarted(
        stream_id=SID,
        call_id=CALL,
        account_id=ACCOUNT,
        parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
    )
    media = codec.parse(DOC_MEDIA)
    assert isinstance(media, MediaReceived)
    assert media.payload == base64.b64decode(DOC_PAYLOAD)
    assert (media.stream_id, media.track, media.chunk, media.timestamp_ms) == (SID, "inbound", 1, 5)
    assert codec.parse(DOC_DTMF) == DtmfReceived(SID, "1")
    assert codec.parse(doc_mark("my label")) == MarkEchoed(SID, "my label")
    assert codec.parse(DOC_STOP) == StreamStopped(SID, CALL)


def test_outbound_messages_have_twilio_shapes() -> None:
    assert json.loads(codec.media(SID, b"\xff\x7f")) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": "/38="},
    }
    assert json.loads(codec.mark(SID, "1.1")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "1.1"},
    }
    assert json.loads(codec.clear(SID)) == {"event": "clear", "streamSid": SID}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        ("[1, 2]", "not_an_object"),
        ('{"event": "dance"}', "unknown_event"),
        ("{}", "unknown_event"),
        ('{"event": "media", "streamSid": "MZ1"}', "missing_field"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": "@@@"}}', "bad_base64"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": "abc"}}', "bad_base64"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": 7}}', "missing_field"),
        ('{"event": "media", "media": {"payload": "AA=="}}', "missing_field"),
        (
            '{"event": "media", "streamSid": "MZ1", "media": {"payload": "AA==", "chunk": "x"}}',
            "bad_field",
        ),
        ('{"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "11"}}', "bad_field"),
        ('{"event": "mark", "streamSid": "MZ1", "mark": {}}', "missing_field"),
        ('{"event": "start", "start": {"streamSid": "MZ1"}}', "missing_field"),
        (
            '{"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1",'
            ' "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000}}}',
            "unsupported_format",
        ),
        (
            '{"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1",'
            ' "customParameters": {"a": {"b": 1}}}}',
            "bad_field",
        ),
        ('{"event": "media", "x": "' + "A" * MAX_MESSAGE_CHARS + '"}', "oversized"),
    ],
)
def test_bad_input_is_a_typed_error_never_an_exception(text: str | bytes, code: str) -> None:
    result = codec.parse(text)
    assert isinstance(result, ProtocolError), result
    assert result.code == code
    assert result.message


# --- the call state machine --------------------------------------------------------------


def started_call(**kwargs: int) -> PhoneCall:
    call = PhoneCall(codec, **kwargs)
    assert call.receive(DOC_CONNECTED) == []
    actions = call.receive(DOC_START)
    assert [type(a) for a in actions] == [CallBegan]
    assert call.state is CallState.STREAMING
    return call


def media_msg(ulaw: bytes) -> str:
    payload = base64.b64encode(ulaw).decode()
    return json.dumps({"event": "media", "streamSid": SID, "media": {"payload": payload}})


def tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def test_media_before_start_dtmf_before_start_and_after_stop_are_counted() -> None:
    call = PhoneCall(codec)
    [err] = call.receive(DOC_MEDIA)
    assert isinstance(err, ProtocolError) and err.code == "media_before_start"
    [err] = call.receive(DOC_DTMF)
    assert isinstance(err, ProtocolError) and err.code == "dtmf_before_start"
    call.receive(DOC_START)
    assert [type(a) for a in call.receive(DOC_STOP)] == [CallEnded]
    [err] = call.receive(DOC_MEDIA)
    assert isinstance(err, ProtocolError) and err.code == "after_stop"
    [err] = call.receive("{oops")
    assert isinstance(err, ProtocolError) and err.code == "malformed_json"
    assert call.errors == {
        "media_before_start": 1,
        "dtmf_before_start": 1,
        "after_stop": 1,
        "malformed_json": 1,
    }


def test_second_start_and_foreign_stream_are_refused_and_state_is_kept() -> None:
    call = started_call()
    [err] = call.receive(DOC_START)
    assert isinstance(err, ProtocolError)
    other = DOC_MEDIA.replace(SID, "MZ" + "0" * 32)
    [err] = call.receive(other)
    assert isinstance(err, ProtocolError) and err.code == "wrong_stream"
    assert call.state is CallState.STREAMING and call.stream_id == SID


def test_caller_audio_is_decoded_and_resampled_to_16k_with_state_across_chunks() -> None:
    call = started_call()
    ulaw = encode_ulaw(tone(8000, 1.0))
    out = b""
    for i in range(0, len(ulaw), 160):  # 20 ms messages
        for action in call.receive(media_msg(ulaw[i : i + 160])):
            assert isinstance(action, CallerAudio) and action.sample_rate == 16000
            out += action.pcm
    tail = call.hang_up("disconnected")
    assert isinstance(tail[-1], CallEnded) and tail[-1].reason == "disconnected"
    out += b"".join(a.pcm for a in tail if isinstance(a, CallerAudio))
    samples = np.frombuffer(out, dtype="<i2")
    assert abs(len(samples) - 16000) <= 16  # one second at 16 kHz, nothing lost
    spectrum = np.abs(np.fft.rfft(samples[1000:15000]))
    peak_hz = np.argmax(spectrum) * 16000 / 14000
    assert abs(peak_hz - 440) < 5  # no clicks or gaps moved the tone


def test_outbound_track_media_is_ignored() -> None:
    call = started_call()
    echo = json.dumps(
        {"event": "media", "streamSid": SID, "media": {"track": "outbound", "payload": "AA=="}}
    )
    assert call.receive(echo) == []


def test_dtmf_reaches_the_session_and_1_or_2_answers_an_approval() -> None:
    call = started_call()
    assert call.receive(DOC_DTMF) == [CallerPressed("1")]
    assert approval_answer("1") is True
    assert approval_answer("2") is False
    assert approval_answer("5") is None


def test_speech_goes_out_as_20ms_media_messages_then_a_mark() -> None:
    call = started_call()
    sends = call.speak(tone(16000, 0.5), 16000, "Hello there.", generation=1)
    msgs = [json.loads(s.text) for s in sends]
    assert [m["event"] for m in msgs[:-1]] == ["media"] * len(msgs[:-1])
    assert msgs[-1] == {"event": "mark", "streamSid": SID, "mark": {"name": "1.1"}}
    sizes = [len(base64.b64decode(m["media"]["payload"])) for m in msgs[:-1]]
    assert all(size == 160 for size in sizes[:-1]) and 0 < sizes[-1] <= 160
    assert abs(sum(sizes) - 4000) <= 8  # 0.5 s of 8 kHz μ-law, the resampler flushed
    assert call.playing


def test_marks_tell_what_was_heard_and_marks_echoed_after_clear_were_not_played() -> None:
    call = started_call()
    call.speak(tone(16000, 0.4), 16000, "First sentence.", generation=3)
    call.speak(tone(22050, 0.6), 22050, "Second sentence.", generation=3)
    call.speak(tone(16000, 0.2), 16000, "Third one.", generation=3)
    [heard] = call.receive(doc_mark("3.1"))
    assert heard == Heard(3, "First sentence.", "First sentence.", 400.0)

    cut = call.interrupt()  # the caller barges in during the second sentence
    assert [json.loads(s.text) for s in cut.sends] == [{"event": "clear", "streamSid": SID}]
    assert (cut.generation, cut.heard_text, cut.played_ms) == (3, "First sentence.", 400.0)
    assert not call.playing
    # Twilio echoes the remaining marks after a clear: not played, nothing heard
    assert call.receive(doc_mark("3.2")) == []
    assert call.receive(doc_mark("3.3")) == []
    assert call.heard(3) == ("First sentence.", 400.0)
    [err] = call.receive(doc_mark("3.2"))  # a second echo of the same mark is unknown
    assert isinstance(err, ProtocolError) and err.code == "unknown_mark"


def test_interrupt_with_nothing_queued_sends_nothing() -> None:
    call = started_call()
    call.speak(tone(16000, 0.1), 16000, "Hi.", generation=1)
    assert len(call.receive(doc_mark("1.1"))) == 1
    cut = call.interrupt()
    assert cut.sends == [] and cut.generation is None


def test_all_marks_echoed_means_everything_was_heard() -> None:
    call = started_call()
    call.speak(tone(16000, 0.2), 16000, "One.", generation=2)
    call.speak(tone(16000, 0.2), 16000, "Two.", generation=2)
    heard = call.receive(doc_mark("2.1")) + call.receive(doc_mark("2.2"))
    assert heard[-1] == Heard(2, "Two.", "One. Two.", 400.0)


def test_stop_ends_the_call_once_and_speaking_after_the_end_is_illegal() -> None:
    call = started_call()
    actions = call.receive(DOC_STOP)
    assert actions[-1] == CallEnded("stop")
    assert call.state is CallState.ENDED and call.end_reason == "stop"
    assert call.hang_up() == []
    with pytest.raises(IllegalTransition):
        call.speak(b"\x00\x00", 16000, "late", generation=1)
    assert isinstance(call.receive(DOC_STOP)[0], ProtocolError)


def test_stop_before_start_ends_the_call() -> None:
    call = PhoneCall(codec)
    assert call.receive(DOC_STOP) == [CallEnded("stop")]


def test_send_is_plain_text_for_the_socket() -> None:
    call = started_call()
    assert all(
        isinstance(s, Send) and isinstance(s.text, str) for s in call.speak(b"", 16000, "", 1)
    )
