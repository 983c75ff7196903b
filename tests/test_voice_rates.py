"""Telephone-band and studio input rates over ``/v1/voice`` with the real embedded
engines: espeak-made speech at 8 kHz and 48 kHz is resampled to 16 kHz for Silero and
pocketsphinx, and the answer comes back at the client's rate.

At 8 kHz the speech has nothing above 4 kHz and pocketsphinx's wideband en-us model
recognises it poorly (measured: "book a real i" for the sentence below, also with
soxr HQ), so there the test asks for a detected, transcribed and answered turn, not
for the words."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from parley.audio.pcm import silence
from parley.testing.speech import speak_pcm
from tests.plugins.apps import RunningApp
from tests.plugins.stores import sqlite_url

SENTENCE = "I would like to book a table for two tonight"


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": sqlite_url(tmp_path)}


async def recv_until(ws: Any, kind: str, audio: list[bytes]) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.recv(), 30)
        if isinstance(msg, bytes):
            audio.append(msg)
            continue
        event: dict[str, Any] = json.loads(msg)
        if event["type"] == kind:
            return event


async def test_8k_and_48k_input_is_understood(running: RunningApp) -> None:
    url = running.base_url.replace("http", "ws", 1) + "/v1/voice"

    async def understood(rate: int) -> None:
        # 1 s of trailing silence, then nothing: if the partial transcript reads unfinished
        # the end-of-turn wait is longer than the audio sent, and the pause's wall-clock
        # deadline (max_stop_secs after the silence began) ends the turn
        pcm = silence(0.5, rate) + speak_pcm(SENTENCE, sample_rate=rate) + silence(1.0, rate)
        frame = rate // 50 * 2  # 20 ms
        audio: list[bytes] = []
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "start", "agent": "demo", "sample_rate": rate}))
            ready = await recv_until(ws, "ready", audio)
            assert ready["input_sample_rate"] == ready["output_sample_rate"] == rate
            await recv_until(ws, "done", audio)  # the greeting
            audio.clear()
            for i in range(0, len(pcm), frame):
                await ws.send(pcm[i : i + frame])
            await recv_until(ws, "vad", audio)
            final = await recv_until(ws, "transcript_final", audio)
            assert final["text"].strip(), rate
            if rate == 48000:
                assert {"table", "two"} <= set(final["text"].split()), final["text"]
            await recv_until(ws, "done", audio)
            # whole samples, batched: at most the 200 ms lead at the client's rate at once
            assert all(len(a) % 2 == 0 for a in audio)
            assert max(len(a) for a in audio) <= 10 * frame
            assert sum(map(len, audio)) > rate  # more than half a second of answer

    await asyncio.gather(understood(8000), understood(48000))  # two sessions at once
