"""False-interruption recovery over a real ``/v1/voice`` WebSocket (real server and client).

The agent speaks a long greeting with the fake engines (energy VAD, 100 ms of sine per
word); the client makes a sound over it. A short one pauses the greeting and resumes
it (every byte still arrives); a long one pauses and then cuts it (``interrupted``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.apps import AppFactory, RunningApp
from tests.plugins.stores import sqlite_url
from tests.test_voice_ws import RECV_TIMEOUT_S, Voice, open_voice, quiet, tone

WORDS = 30  # 3 s of greeting
AGENT = f"""
name: talker
brain: rules
greeting: "{" ".join(["word"] * WORDS)}."
fallback: "Pardon?"
engines: {{stt: fake, tts: fake, vad: fake_energy}}
rules:
  - intent: reserve
    keywords: [table]
    say: "Sure thing."
"""


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": sqlite_url(tmp_path)}


@pytest.fixture
async def app(make_app: AppFactory, tmp_path: Path) -> AsyncIterator[RunningApp]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "talker.yaml").write_text(AGENT)
    async with make_app(agents_dir=agents) as running:
        yield running


async def first_audio(voice: Voice) -> None:
    while not voice.audio:
        msg = await asyncio.wait_for(voice.ws.recv(), RECV_TIMEOUT_S)
        if isinstance(msg, bytes):
            voice.audio.append(msg)
        else:
            voice.events.append(json.loads(msg))


async def send_pcm(voice: Voice, pcm: bytes, chunk: int = 640) -> None:
    for i in range(0, len(pcm), chunk):
        await voice.ws.send(pcm[i : i + chunk])


async def test_a_short_sound_pauses_the_greeting_and_it_resumes_whole(app: RunningApp) -> None:
    voice, _ = await open_voice(app, agent="talker")
    await first_audio(voice)
    await send_pcm(voice, quiet(0.1) + tone(0.15) + quiet(0.5))
    await voice.until("playback_paused")
    heard_at_pause = sum(map(len, voice.audio))
    await voice.until("playback_resumed")
    assert sum(map(len, voice.audio)) == heard_at_pause  # nothing sent while paused
    await voice.until("done")
    assert sum(map(len, voice.audio)) == WORDS * 3200  # every byte of the greeting
    assert "interrupted" not in voice.types()
    await voice.ws.close()


async def test_a_long_sound_pauses_then_cuts_the_greeting(app: RunningApp) -> None:
    voice, _ = await open_voice(app, agent="talker")
    await first_audio(voice)
    await send_pcm(voice, quiet(0.1) + tone(1.0) + quiet(0.8))
    await voice.until("playback_paused")
    await voice.until("interrupted")
    assert "playback_resumed" not in voice.types()
    await voice.until("transcript_final")  # the interruption is the caller's turn
    await voice.until("done")
    assert sum(map(len, voice.audio)) < WORDS * 3200
    await voice.ws.close()
