"""``UnpacedOutput``: the same voice session with an output for a client that paces
itself (Realtime-style): audio goes out as soon as it is synthesised, yet "what was
heard" and the end of speaking follow the client's real-time playback."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.brain.core import UserInput
from parley.testing import FakeClock
from parley.testing.voice import MemoryTransport, ScriptedLLM, ScriptedSTT, ToneTTS, voice_harness
from parley.voice.io import AudioOutput, VoiceOptions
from parley.voice.unpaced import UnpacedOutput
from tests.plugins.stores import sqlite_url

REPLY = "One two three. Four five six."  # 6 words: 600 ms of tone


def unpaced(options: VoiceOptions, transport: MemoryTransport, clock: FakeClock) -> AudioOutput:
    return UnpacedOutput(options.output_rate, transport, clock)


async def test_audio_goes_out_at_once_and_done_waits_for_the_playback(tmp_path: Path) -> None:
    async with voice_harness(
        sqlite_url(tmp_path), llm=ScriptedLLM(REPLY), tts=ToneTTS(), output=unpaced
    ) as h:
        await h.conn.start()
        h.conn.user_turn(UserInput("hi", "voice"))
        await h.until("done")
        first = h.transport.first_audio_at()
        audio = [s for s in h.transport.sent if s.kind == "audio"]
        assert sum(len(s.data) for s in audio) == 6 * 3200  # 6 words of 100 ms at 16 kHz
        assert all(s.at == first for s in audio)  # nothing waited for real time
        done_at = next(
            s.at for s in h.transport.sent if s.kind == "json" and s.data["type"] == "done"
        )
        assert done_at - first == pytest.approx(0.6, abs=0.03)  # after the client played it
        assert [m.text for m in await h.messages("assistant")] == [REPLY]


async def test_an_interruption_keeps_only_what_the_client_played(tmp_path: Path) -> None:
    async with voice_harness(
        sqlite_url(tmp_path), llm=ScriptedLLM(REPLY), tts=ToneTTS(), output=unpaced
    ) as h:
        await h.conn.start()
        h.conn.user_turn(UserInput("hi", "voice"))
        await h.time.run_until(lambda: any(s.kind == "audio" for s in h.transport.sent))
        await h.time.run_for(0.35)  # the first sentence (300 ms) has been played
        await h.conn.interrupt()
        await h.time.settle()
        assert h.transport.count("interrupted") == 1
        (message,) = await h.messages("assistant")
        assert (message.text, message.interrupted) == ("One two three.", True)
        assert not h.conn.agent_speaking


async def test_a_reported_position_is_what_was_heard(tmp_path: Path) -> None:
    async with voice_harness(
        sqlite_url(tmp_path), llm=ScriptedLLM(REPLY), tts=ToneTTS(), output=unpaced
    ) as h:
        await h.conn.start()
        h.conn.user_turn(UserInput("hi", "voice"))
        await h.time.run_until(lambda: any(s.kind == "audio" for s in h.transport.sent))
        await h.time.run_for(0.5)
        h.conn.client_played(0)  # e.g. a truncate at 0 ms: the client played nothing yet
        await h.conn.interrupt()
        await h.time.settle()
        (message,) = await h.messages("assistant")
        assert (message.text, message.interrupted) == ("", True)


async def test_a_pause_holds_the_client_and_done_waits_for_it(tmp_path: Path) -> None:
    async with voice_harness(
        sqlite_url(tmp_path),
        stt=ScriptedSTT(["hi"]),
        llm=ScriptedLLM(REPLY),
        tts=ToneTTS(),
        output=unpaced,
    ) as h:
        await h.conn.start()
        await h.mic.utterance()
        first = h.transport.first_audio_at()
        await h.mic.silence(0.1)
        await h.mic.speak(0.1)  # a click over the agent: paused, then resumed
        await h.mic.silence(0.5)
        sent = h.transport.sent
        paused = sent[h.transport.index("playback_paused")].at
        resumed = sent[h.transport.index("playback_resumed")].at
        assert resumed - paused == pytest.approx(0.06 + 0.3, abs=0.03)
        await h.until("done")
        done_at = sent[h.transport.index("done")].at
        assert done_at - first == pytest.approx(0.6 + (resumed - paused), abs=0.03)
        assert sum(len(s.data) for s in sent if s.kind == "audio") == 6 * 3200
        assert [m.text for m in await h.messages("assistant")] == [REPLY]
