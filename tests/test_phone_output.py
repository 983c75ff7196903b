"""``CarrierOutput`` without a socket: paced batches are cut at sentence ends into
μ-law media + marks, the marks echoed are what was heard, and ``clear`` returns it.

The pump's task is not started: the test hands batches to ``send_audio`` (the pump's
sink) itself and reads the messages with ``flush``, so nothing depends on timing.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from parley.channels.phone_output import CarrierOutput
from parley.telephony.call import CallState, Heard, PhoneCall
from parley.telephony.twilio_wire import TwilioCodec
from parley.testing import FakeClock
from parley.voice.io import VoiceOptions

SID = "MZ" + "1" * 32
START = {
    "event": "start",
    "streamSid": SID,
    "start": {"streamSid": SID, "callSid": "CA1", "accountSid": "AC1", "tracks": ["inbound"]},
}
OPTIONS = VoiceOptions(output_rate=8000, channel="phone")


def pcm(ms: int) -> bytes:
    return b"\x10\x00" * (8 * ms)  # 8 kHz PCM16


async def started() -> tuple[CarrierOutput, PhoneCall, list[dict[str, Any]]]:
    call = PhoneCall(TwilioCodec())
    call.receive(json.dumps(START))
    sent: list[dict[str, Any]] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    return CarrierOutput(call, OPTIONS, FakeClock(), send), call, sent


def echo(call: PhoneCall, name: str) -> list[Any]:
    return call.receive(json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": name}}))


def media_ms(messages: list[dict[str, Any]]) -> int:
    payloads = [m["media"]["payload"] for m in messages if m["event"] == "media"]
    return sum(len(base64.b64decode(p)) for p in payloads) // 8


async def test_batches_are_cut_at_sentence_ends_and_the_mark_carries_the_sentence() -> None:
    output, call, sent = await started()
    generation = output.new_generation()
    assert output.enqueue(pcm(50), "One.", generation, extend=False)
    assert output.enqueue(pcm(30), "Two words.", generation, extend=False)
    assert output.enqueue(pcm(10), "", generation, extend=True)  # more audio of "Two words."
    await output.send_audio(pcm(60))  # a batch: all of "One." + 10 ms of the next
    await output.send_audio(pcm(30))  # the rest
    await output.flush()
    events = [m["event"] for m in sent]
    assert events == ["media", "media", "media", "mark", "media", "mark", "media", "media", "mark"]
    assert media_ms(sent) == 90 and all(m["streamSid"] == SID for m in sent)
    marks = [m["mark"]["name"] for m in sent if m["event"] == "mark"]
    assert marks == [f"{generation}.1", f"{generation}.2", f"{generation}.3"]
    heard = [a for name in marks[:2] for a in echo(call, name) if isinstance(a, Heard)]
    assert [h.heard_text for h in heard] == ["One.", "One."]  # the 2nd mark: no sentence end
    assert heard[-1].played_ms == 60.0
    # barge-in now: clear goes out, the third mark is dropped, "One." was heard
    assert output.clear(0.0) == "One."
    await output.flush()
    assert sent[-1] == {"event": "clear", "streamSid": SID}
    assert echo(call, marks[2]) == []  # echoed after the clear: not played


async def test_the_whole_reply_heard_and_a_stale_generation_refused() -> None:
    output, call, sent = await started()
    old = output.new_generation()
    generation = output.new_generation()
    assert not output.enqueue(pcm(20), "Stale.", old, extend=False)
    assert output.enqueue(pcm(20), "Hello.", generation, extend=False)
    await output.send_audio(pcm(20))
    await output.flush()
    (mark,) = [m["mark"]["name"] for m in sent if m["event"] == "mark"]
    (heard,) = echo(call, mark)
    assert isinstance(heard, Heard)
    output.heard(heard)  # playback truth reaches the pump
    assert output.clear(0.0) == "Hello."


async def test_nothing_is_sent_once_the_call_has_ended() -> None:
    output, call, sent = await started()
    generation = output.new_generation()
    output.enqueue(pcm(20), "Bye.", generation, extend=False)
    call.receive(json.dumps({"event": "stop", "streamSid": SID}))
    assert call.state is CallState.ENDED
    await output.send_audio(pcm(20))
    assert output.clear(0.0) == ""
    await output.close()
    assert sent == []


@pytest.mark.parametrize("extend", [False, True])
async def test_audio_with_no_segment_left_goes_out_untagged(extend: bool) -> None:
    output, _, sent = await started()
    generation = output.new_generation()
    output.enqueue(pcm(20), "A.", generation, extend=False)
    await output.send_audio(pcm(20))
    output.enqueue(pcm(20), "", generation, extend=extend)  # streamed after "A." went out
    await output.send_audio(pcm(20))
    await output.flush()
    assert [m["event"] for m in sent] == ["media", "mark", "media", "mark"]
