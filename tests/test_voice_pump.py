"""``AudioPump`` batching in virtual time, and the inbound fast path of ``VoiceInput``.

Outbound: one message per wake-up holding every due frame; during playback a batch of
``batch_ms`` per message, never more than ``lead_ms`` ahead of real time, the first
audio at once, nothing of an interrupted generation, every byte delivered.
Inbound: whole 16 kHz frames skip the aligner/splitter, with byte-identical results.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from parley.testing import FakeClock
from parley.testing.voice import MemoryTransport, ScriptedSTT, voice_harness
from parley.voice.io import VoiceOptions
from parley.voice.pump import AudioPump
from tests.plugins.stores import sqlite_url

RATE = 16000
FRAME = 640  # 20 ms at 16 kHz
EPS = 1e-6


def tone(secs: float, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-3000, 3000, round(secs * RATE), dtype="<i2").tobytes()


@dataclass
class Rig:
    time: FakeClock
    pump: AudioPump
    transport: MemoryTransport
    speaking: list[tuple[float, bool]] = field(default_factory=list)
    naps: list[float] = field(default_factory=list)

    def say(self, pcm: bytes, text: str = "") -> None:
        self.pump.playout.enqueue(pcm, text, self.pump.playout.generation)
        self.pump.wake()

    def sends(self) -> list[tuple[float, bytes]]:
        return [(s.at, s.data) for s in self.transport.sent if s.kind == "audio"]

    async def until_quiet(self) -> None:
        await self.time.run_until(
            lambda: not self.pump.speaking and not self.pump.playout.has_queued
        )


@dataclass
class Listener:
    """The pump's ``OutputListener``: records when the agent is audible."""

    rig: Rig
    on_first: Callable[[float], None] | None
    batches: int = 0

    def speaking_changed(self, speaking: bool) -> None:
        self.rig.speaking.append((self.rig.time.monotonic(), speaking))

    def first_audio(self, now: float) -> None:
        if self.on_first is not None:
            self.on_first(now)

    async def before_audio(self) -> None:
        self.batches += 1


@asynccontextmanager
async def rig(
    lead_ms: float = 200, batch_ms: float = 60, on_first: Callable[[float], None] | None = None
) -> AsyncIterator[Rig]:
    time = FakeClock()
    transport = MemoryTransport(time)
    naps = time.sleeps

    pump = AudioPump(RATE, lead_ms, transport, time, batch_ms=batch_ms)
    state = Rig(time, pump, transport, naps=naps)
    pump.start(Listener(state, on_first))
    try:
        yield state
    finally:
        await pump.close()


def ahead_after_each_send(sends: list[tuple[float, bytes]]) -> list[float]:
    """Audio buffered at a client that plays continuously from the first message."""
    t0 = sends[0][0]
    total, out = 0.0, []
    for at, data in sends:
        total += len(data) / 2 / RATE
        out.append(total - (at - t0))
    return out


# --- outbound: batching --------------------------------------------------------------


@pytest.mark.parametrize(
    ("lead_ms", "batch_ms", "messages"),
    [(200, 60, 1 + 47), (200, 20, 1 + 140), (200, 100, 1 + 28), (200, 200, 15), (100, 60, 1 + 49)],
)
async def test_steady_playback_sends_one_message_per_batch(
    lead_ms: float, batch_ms: float, messages: int
) -> None:
    async with rig(lead_ms, batch_ms) as r:
        r.say(tone(3.0))
        await r.until_quiet()
        sends = r.sends()
        assert len(sends) == messages  # the lead at once, then one batch per batch_ms
        assert len(sends[0][1]) == round(lead_ms / 1000 * RATE) * 2
        batch = round(batch_ms / 1000 * RATE) * 2
        assert all(len(data) == batch for _, data in sends[1:-1])
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(sends[1:])]
        assert all(gap == pytest.approx(batch_ms / 1000) for gap in gaps)
        # wake-ups: one per batch, plus frame polls while the last lead drains
        assert len(r.naps) <= messages + lead_ms / 20


async def test_the_default_batch_is_60_ms_about_17_messages_per_second() -> None:
    async with rig() as r:
        r.say(tone(10.0))
        await r.time.run_for(10.0)
        sends = r.sends()
        per_second = (len(sends) - 1) / (sends[-1][0] - sends[0][0])
        assert per_second == pytest.approx(1000 / 60, rel=0.02)
        assert len(r.naps) < 10 * 17 + 10  # one per batch and a few at the end; was 500


@pytest.mark.parametrize(("lead_ms", "batch_ms"), [(200, 60), (200, 200), (60, 20), (120, 100)])
async def test_never_more_than_the_lead_ahead_and_never_starved(
    lead_ms: float, batch_ms: float
) -> None:
    async with rig(lead_ms, batch_ms) as r:
        r.say(tone(0.1, 1))
        for i in range(40):  # a TTS streaming 100 ms chunks twice as fast as real time
            await r.time.run_for(0.05)
            r.pump.playout.enqueue(tone(0.1, i + 2), "", extend=True)
            r.pump.wake()
        await r.until_quiet()
        sends = r.sends()
        ahead = ahead_after_each_send(sends)
        assert max(ahead) <= lead_ms / 1000 + EPS
        before = [a - len(d) / 2 / RATE for a, (_, d) in zip(ahead, sends, strict=True)]
        assert min(before[1:]) >= -EPS  # the client never ran dry
        assert sum(len(d) for _, d in sends) == 41 * 3200


async def test_first_audio_goes_out_at_once() -> None:
    firsts: list[float] = []
    async with rig(on_first=firsts.append) as r:
        await r.time.run_for(1.234)
        r.say(tone(1.0))
        await r.time.settle()
        assert r.sends()[0][0] == r.time.monotonic()
        assert len(r.sends()[0][1]) == 200 * 32  # the whole lead in one message
        assert firsts[0] == r.time.monotonic()
        assert r.speaking == [(r.time.monotonic(), True)]


async def test_a_new_response_interrupts_the_pumps_sleep() -> None:
    async with rig() as r:
        r.say(tone(1.0))
        await r.time.run_for(0.25)  # sends at 0, .06, .12, .18, .24: asleep until .30
        r.pump.playout.clear(r.time.monotonic())
        r.pump.playout.new_generation()
        r.say(tone(0.5, 9), "next")
        await r.time.settle()
        at, data = r.sends()[-1]
        assert at == r.time.monotonic() and data == tone(0.5, 9)[: 200 * 32]
        await r.until_quiet()
        assert r.transport.audio_bytes().endswith(tone(0.5, 9))


async def test_close_works_right_after_a_wake_cut_a_sleep_short() -> None:
    async with rig() as r:
        r.say(tone(1.0))
        await r.time.run_for(0.1)
        r.pump.playout.new_generation()
        r.say(tone(0.2))
        await r.pump.close()  # both cancellations pending: the pump still stops
        assert r.pump._task is not None and r.pump._task.cancelled()


async def test_speaking_starts_with_the_first_batch_and_ends_when_played() -> None:
    async with rig() as r:
        r.say(tone(1.0))
        await r.until_quiet()
        (start, on), (end, off) = r.speaking
        assert on and not off
        assert end - start == pytest.approx(1.0)
        assert r.pump.playout.drained(end)


# --- outbound: generations and bytes ------------------------------------------------------


async def test_nothing_is_sent_when_cleared_between_taking_and_sending() -> None:
    cleared: list[str] = []
    pump_ref: list[AudioPump] = []

    def barge_in(now: float) -> None:  # runs after due_frames, before the send
        cleared.append(pump_ref[0].playout.clear(now))

    async with rig(on_first=barge_in) as r:
        pump_ref.append(r.pump)
        r.say(tone(1.0), "never heard")
        await r.time.run_for(1.0)
        assert cleared == [""] and r.sends() == []


async def test_nothing_of_an_interrupted_generation_after_a_blocked_send() -> None:
    async with rig() as r:
        gate = r.transport.audio_gate = asyncio.Event()
        r.say(tone(1.0, 1))
        await r.time.run_for(0.5)  # stuck in the first send
        assert len(r.sends()) == 1
        r.pump.playout.clear(r.time.monotonic())
        gate.set()
        await r.time.run_for(1.0)
        assert len(r.sends()) == 1
        r.pump.playout.new_generation()
        r.say(tone(0.3, 2))
        await r.until_quiet()
        assert r.transport.audio_bytes() == tone(1.0, 1)[: 200 * 32] + tone(0.3, 2)


async def test_the_bytes_received_are_the_bytes_synthesised() -> None:
    rng = random.Random(3)
    segments = [tone(rng.randrange(1, 700) / 1000, i) for i in range(12)]
    segments.append(b"\x05\x00" * 35)  # odd frame tails
    async with rig() as r:
        for segment in segments:
            r.say(segment, "words")
            await r.time.run_for(rng.choice([0.0, 0.01, 0.05, 0.3]))
        await r.until_quiet()
        messages = r.transport.audio_messages()
        assert all(len(m) % 2 == 0 for m in messages)
        assert b"".join(messages) == b"".join(segments)


@pytest.mark.parametrize(("batch_ms", "lead_ms"), [(10, 200), (19.9, 200), (300, 200), (60, 40)])
def test_voice_options_check_the_batch(batch_ms: float, lead_ms: float) -> None:
    with pytest.raises(ValueError, match="send_batch_ms must be between 20 and lead_ms"):
        VoiceOptions(lead_ms=lead_ms, send_batch_ms=batch_ms)
    assert VoiceOptions().send_batch_ms == 60.0
    assert VoiceOptions(lead_ms=20, send_batch_ms=20).send_batch_ms == 20


# --- inbound: the whole-frame fast path ------------------------------------------------------


def mic_audio() -> bytes:
    """Silence, 0.6 s of speech, silence: random samples, the VAD reads the last one."""
    rng = np.random.default_rng(5)
    frames = []
    for i in range(125):
        frame = rng.integers(-50, 50, FRAME // 2, dtype="<i2")
        frame[-1] = 10000 if 15 <= i < 45 else 0  # ScriptedVAD: probability 1.0 / 0.0
        frames.append(frame.tobytes())
    return b"".join(frames)


def pieces(data: bytes, how: str) -> list[bytes]:
    if how == "frames":
        return [data[i : i + FRAME] for i in range(0, len(data), FRAME)]
    if how == "big":
        return [data]
    rng = random.Random(11)
    sizes = [1, 639, 640, 1280, 3, 637, 640, 2560] if how == "mixed" else [1, 3, 7, 641, 1279]
    out, pos = [], 0
    while pos < len(data):
        size = sizes[len(out) % len(sizes)] if how == "mixed" else rng.choice(sizes)
        out.append(data[pos : pos + size])
        pos += size
    return out


async def frames_seen(tmp_path: Path, how: str) -> tuple[list[bytes], list[bytes]]:
    vad_frames: list[bytes] = []
    stt_frames: list[bytes] = []
    async with voice_harness(sqlite_url(tmp_path / how), stt=ScriptedSTT(["hi"])) as h:
        vad_process, stt_push = h.conn.input.vad.process, h.conn.input.stt_feed.push

        def vad_spy(frame: bytes) -> float:
            vad_frames.append(frame)
            return vad_process(frame)

        def stt_spy(frame: bytes) -> None:
            stt_frames.append(frame)
            stt_push(frame)

        h.conn.input.vad.process = vad_spy  # type: ignore[method-assign]
        h.conn.input.stt_feed.push = stt_spy  # type: ignore[method-assign]
        for piece in pieces(mic_audio(), how):
            await h.conn.feed_audio(piece)
        await h.time.settle()
    return vad_frames, stt_frames


async def test_whole_frames_odd_pieces_and_one_chunk_give_identical_frames(
    tmp_path: Path,
) -> None:
    for how in ("frames", "big", "odd", "mixed"):
        (tmp_path / how).mkdir()
    reference = await frames_seen(tmp_path, "frames")
    vad_frames, stt_frames = reference
    assert b"".join(vad_frames) == mic_audio()
    assert all(type(f) is bytes and len(f) == FRAME for f in vad_frames)
    assert stt_frames and all(type(f) is bytes for f in stt_frames)
    for how in ("big", "odd", "mixed"):
        assert await frames_seen(tmp_path, how) == reference, how
