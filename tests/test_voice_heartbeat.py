"""The agent's heartbeat on the voice WebSocket (``limits.heartbeat_s``): announced in
``ready``; a client that sends nothing for two intervals is closed as a drop (1001) and
can resume; any frame, a ``ping`` included, keeps it open. On a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley.channels.heartbeat import Heartbeat
from parley.testing import FakeClock
from tests.plugins.apps import AppFactory
from tests.test_voice_long import bounded
from tests.test_voice_ws import AGENTS, open_voice

BEATING = """
name: beating
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {stt: fake, tts: fake, vad: fake_energy}
limits: {heartbeat_s: 5, resume_grace_s: 30}
"""


async def _true(value: bool) -> bool:
    return value


async def test_silence_returns_after_two_intervals_without_a_beat() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(clock, 5)
    silent = asyncio.create_task(heartbeat.silence())
    await clock.run_for(9)
    heartbeat.beat()  # at 9 s: the silence starts again
    await clock.run_for(9.5)  # 18.5 s
    assert not silent.done()
    await clock.run_for(0.5)  # 19 s: ten without a beat
    await asyncio.sleep(0)
    assert silent.done()
    assert heartbeat.reason() == "no frame for 10 s (heartbeat 5 s)"


async def test_a_silent_client_is_dropped_and_resumes_a_pinging_one_stays(
    make_app: AppFactory, tmp_path: Path
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    for name, text in {**AGENTS, "beating.yaml": BEATING}.items():
        (agents / name).write_text(text)
    clock = FakeClock()
    async with make_app(clock=clock, agents_dir=agents) as app:
        voice, ready = await open_voice(app, agent="beating")
        assert ready["heartbeat_s"] == 5
        await bounded(lambda: _true(10.0 in clock.sleeps), "the heartbeat watch")
        for _ in range(3):  # 12 s of pings every 4 s: still open
            clock.advance(4)
            await voice.send({"type": "ping"})
            await voice.until("pong")
        assert voice.ws.close_code is None
        clock.advance(10)  # two intervals of silence
        assert await voice.closed() == 1001
        session = await app.services.store.get_session(ready["session_id"])
        assert session is not None and session.status == "active"
        again, resumed = await open_voice(app, resume_token=ready["resume_token"])
        assert resumed["session_id"] == ready["session_id"]
        await again.ws.close()
