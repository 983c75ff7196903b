"""A phone call (simulated Twilio carrier, μ-law over the real media-stream socket) to a
``brain: realtime`` agent: the caller's audio reaches the local fake Gemini Live, the
model's audio comes back to the carrier at 8 kHz, both transcripts are stored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from parley.testing.fake_gemini_live import FakeGeminiLive
from parley.testing.fake_openai_realtime import FakeOpenAIRealtime
from parley.testing.phone_peer import TWILIO
from parley.testing.s2s_script import Reply
from tests.plugins.apps import AppFactory
from tests.plugins.stores import sqlite_url
from tests.test_phone_calls import PUBLIC, dial, ended, session_of_call
from tests.test_s2s_voice import TURN_BYTES, agent_yaml, utterance


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": sqlite_url(tmp_path)}


async def test_a_phone_call_talks_to_a_realtime_agent(make_app: AppFactory, tmp_path: Path) -> None:
    fake = FakeGeminiLive(
        [Reply(heard="A table for two.", says="Sure, for two.", chunks=10)],
        bytes_per_turn=TURN_BYTES - 4_000,  # the line's 8 kHz μ-law, back at 16 kHz
    )
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "rt.yaml").write_text(agent_yaml("rt", "gemini_live"))
    call_id = "CA" + "5" * 32
    async with (
        fake.running(),
        make_app(
            agents_dir=agents, public_url=PUBLIC, gemini_api_key="k", gemini_base_url=fake.base_url
        ) as app,
    ):
        async with await dial(app, TWILIO, call_id, "agent=rt") as peer:
            await peer.say(utterance("a table for two"))
            # 10 × 20 ms of model audio at 8 kHz μ-law: 1 600 bytes (the resampler keeps a
            # few ms until the answer ends)
            await peer.wait_for(lambda p: len(p.heard_audio) + p.queued_bytes >= 1_500)
            session = await session_of_call(app, call_id)
            for _ in range(500):
                messages = await app.services.store.list_messages(session.id)
                if len(messages) == 2:
                    break
                await asyncio.sleep(0.01)
            assert [(m.role, m.text, m.channel) for m in messages] == [
                ("user", "A table for two.", "phone"),
                ("assistant", "Sure, for two.", "phone"),
            ]
            await peer.hang_up()
            done = await ended(app, session.id)
    assert done.end_reason == "USER_ENDED"
    assert fake.connections[0].audio_bytes >= TURN_BYTES - 4_000


async def test_a_phone_barge_in_truncates_the_answer_at_what_the_carrier_played(
    make_app: AppFactory, tmp_path: Path
) -> None:
    """The caller had heard 100 ms of a 400 ms answer when they spoke again: OpenAI's
    ``conversation.item.truncate`` says what the carrier's echoed marks say was played,
    not the whole answer that was queued."""
    words = " ".join(f"w{i}" for i in range(1, 21))
    fake = FakeOpenAIRealtime(
        [
            Reply(heard="Tell me the menu.", says=words, chunks=20),
            Reply(heard="Stop, thanks.", says="Okay.", chunks=2),
        ],
        bytes_per_turn=(TURN_BYTES - 4_000) * 3 // 2,  # the line's audio, at 24 kHz
    )
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "rt.yaml").write_text(agent_yaml("rt", "openai_realtime"))
    call_id = "CA" + "6" * 32
    async with (
        fake.running(),
        make_app(
            agents_dir=agents,
            public_url=PUBLIC,
            openai_api_key="k",
            openai_base_url=fake.base_url + "/v1",
        ) as app,
        await dial(app, TWILIO, call_id, "agent=rt") as peer,
    ):
        await peer.say(utterance("tell me the menu"))
        await peer.wait_for(lambda p: p.queued_bytes >= 1_600)  # 200 ms at the carrier
        await peer.play(0.1)  # the caller heard 100 ms; the rest waits at the carrier
        await peer.say(utterance("stop thanks"))
        await peer.wait_for(lambda p: p.clears >= 1)
        for _ in range(500):
            if fake.connections[0].truncates:
                break
            await asyncio.sleep(0.01)
        truncate = fake.connections[0].truncates[0]
        # at most the 100 ms played (the end of the last batch whose mark came back), not
        # the 400 ms queued
        assert 0 < truncate["audio_end_ms"] <= 100, truncate
        await peer.hang_up()
