"""Long voice sessions over real WebSockets: resume (same and another worker), the grace
after a drop, time-limit warnings and the end, the drain with ``go_away``, one greeting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from parley.channels.services import drain
from parley.testing import FakeClock
from tests.plugins.apps import AppFactory, RunningApp
from tests.plugins.stores import postgres_url, redis_prefix, redis_url, sqlite_url
from tests.test_voice_ws import AGENTS, Voice, open_voice, url

LONG = """
name: longvoice
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {stt: fake, tts: fake, vad: fake_energy}
limits: {max_duration_s: 60, warning_before_s: 30, resume_grace_s: 5,
         warning_message: "We have {minutes} left."}
rules:
  - intent: reserve
    keywords: [table]
    say: "Sure thing."
"""


def write_agents(tmp_path: Path) -> Path:
    agents = tmp_path / "agents"
    agents.mkdir(exist_ok=True)
    for name, text in {**AGENTS, "longvoice.yaml": LONG}.items():
        (agents / name).write_text(text)
    return agents


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": sqlite_url(tmp_path)}


async def bounded(condition: Any, what: str, tries: int = 500) -> None:
    """Wait (bounded) for server-side work that follows a socket event."""
    for _ in range(tries):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_resume_rotates_the_token_and_a_spent_one_is_refused(
    make_app: AppFactory, tmp_path: Path
) -> None:
    async with make_app(agents_dir=write_agents(tmp_path)) as app:
        first, ready = await open_voice(app, agent="fakevoice")
        await first.ws.close()  # dropped, not ended
        second, again = await open_voice(app, resume_token=ready["resume_token"])
        assert again["session_id"] == ready["session_id"]
        assert again["resume_token"] != ready["resume_token"]
        await second.ws.close()
        ws = await websockets.connect(url(app))
        stale = Voice(ws)
        await stale.send({"type": "start", "resume_token": ready["resume_token"]})
        error = await stale.until("error")
        assert error["code"] == "resume_token_invalid"
        assert await stale.closed() == 1008


async def test_a_dropped_session_ends_disconnected_after_the_grace(
    make_app: AppFactory, tmp_path: Path
) -> None:
    clock = FakeClock()
    async with make_app(clock=clock, agents_dir=write_agents(tmp_path)) as app:
        voice, ready = await open_voice(app, agent="longvoice")
        sid = ready["session_id"]
        await voice.ws.close()
        await bounded(lambda: _async(5.0 in clock.sleeps), "the grace timer")
        clock.advance(4.9)
        await asyncio.sleep(0)
        assert (await app.services.store.get_session(sid)).status == "active"  # type: ignore[union-attr]
        clock.advance(0.1)

        async def ended() -> bool:
            session = await app.services.store.get_session(sid)
            return session is not None and session.status == "ended"

        await bounded(ended, "the end after the grace")
        session = await app.services.store.get_session(sid)
        assert session is not None and session.end_reason == "DISCONNECTED"


async def test_a_resume_inside_the_grace_keeps_the_session(
    make_app: AppFactory, tmp_path: Path
) -> None:
    clock = FakeClock()
    async with make_app(clock=clock, agents_dir=write_agents(tmp_path)) as app:
        voice, ready = await open_voice(app, agent="longvoice")
        await voice.ws.close()
        await bounded(lambda: _async(5.0 in clock.sleeps), "the grace timer")
        again, _ = await open_voice(app, resume_token=ready["resume_token"])
        clock.advance(5)
        for _ in range(20):
            await asyncio.sleep(0)
        session = await app.services.store.get_session(ready["session_id"])
        assert session is not None and session.status == "active"
        await again.ws.close()


async def test_warning_then_time_limit_over_the_websocket(
    make_app: AppFactory, tmp_path: Path
) -> None:
    clock = FakeClock()
    async with make_app(clock=clock, agents_dir=write_agents(tmp_path)) as app:
        voice, _ = await open_voice(app, agent="longvoice")
        clock.advance(30)
        warning = await voice.until("warning")
        assert warning == {"type": "warning", "reason": "time_limit", "seconds_left": 30.0}
        await voice.send({"type": "ping"})  # a live client: the heartbeat (20 s) holds
        await voice.until("pong")
        clock.advance(30)
        ended = await voice.until("session_ended")
        assert ended["reason"] == "TIME_LIMIT"
        assert await voice.closed() in (1000, 1005)


async def test_two_first_connections_greet_once(make_app: AppFactory, tmp_path: Path) -> None:
    async with make_app(agents_dir=write_agents(tmp_path)) as app:
        client = app.client()
        created = await client.create_session("fakevoice")
        session = await app.services.store.get_session(created["session_id"])
        assert session is not None
        copies = [await app.services.store.get_session(session.id) for _ in range(2)]
        claims = await asyncio.gather(
            *(app.services.lifecycle.claim_greeting(c) for c in copies if c is not None)
        )
        assert sorted(claims) == [False, True]
        assert await app.services.lifecycle.claim_greeting(session) is False
        await client.aclose()


async def _async(value: bool) -> bool:
    return value


@pytest.fixture
async def shared(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with postgres_url() as db, redis_prefix() as prefix:
        yield {
            "database_url": db,
            "redis_url": redis_url(),
            "redis_prefix": prefix,
            "agents_dir": write_agents(tmp_path),
        }


async def test_drain_sends_go_away_and_the_session_resumes_on_another_worker(
    shared: dict[str, Any], tmp_path: Path
) -> None:
    from parley.app import create_app
    from parley.config import Settings
    from parley.server import serve_app

    apps = [create_app(Settings(data_dir=tmp_path / f"w{i}", **shared)) for i in range(2)]
    async with serve_app(apps[0]) as base_a, serve_app(apps[1]) as base_b:
        a = RunningApp(base_a, apps[0].state.services, None)
        b = RunningApp(base_b, apps[1].state.services, None)
        voice, ready = await open_voice(a, agent="fakevoice")
        await voice.until("done")  # the greeting was spoken on worker A
        draining = asyncio.create_task(drain(a.services, 10.0))
        go_away = await voice.until("go_away")
        assert go_away["reason"] == "server_shutdown"
        moved, again = await open_voice(b, resume_token=go_away["resume_token"])
        assert again["session_id"] == ready["session_id"]
        replaced = await voice.until("error")
        assert replaced["code"] == "attachment_replaced"
        await asyncio.wait_for(draining, 10)  # returned: nothing left on A
        session = await b.services.store.get_session(ready["session_id"])
        assert session is not None and session.status == "active"
        await moved.speak()
        await moved.until("done")
        history = await b.services.store.list_messages(ready["session_id"])
        assert [m.text for m in history if m.role == "assistant"].count("Hi.") == 1
        assert [m.role for m in history][-2:] == ["user", "assistant"]
        await moved.ws.close()


async def test_what_stays_at_the_drain_deadline_ends_server_shutdown(
    shared: dict[str, Any], tmp_path: Path
) -> None:
    from parley.app import create_app
    from parley.config import Settings
    from parley.server import serve_app

    app = create_app(Settings(data_dir=tmp_path / "w", **shared))
    async with serve_app(app) as base:
        running = RunningApp(base, app.state.services, None)
        voice, ready = await open_voice(running, agent="fakevoice")
        await drain(running.services, 0.2)  # the client never moves
        assert (await voice.until("session_ended"))["reason"] == "SERVER_SHUTDOWN"
        session = await running.services.store.get_session(ready["session_id"])
        assert session is not None and session.end_reason == "SERVER_SHUTDOWN"
        refused = running.client()
        with pytest.raises(Exception, match="server_draining"):
            await refused.create_session("fakevoice")
        await refused.aclose()


async def test_metrics_count_live_voice_sessions_and_bad_messages(
    make_app: AppFactory, tmp_path: Path
) -> None:
    import httpx

    async with make_app(agents_dir=write_agents(tmp_path)) as app:
        voice, _ = await open_voice(app, agent="fakevoice")
        await voice.until("done")  # the greeting
        await voice.speak()
        done = await voice.until("done")
        assert done["latency_ms"]["first_audio"] > 0
        await voice.send("{not json")
        assert (await voice.until("error"))["code"] == "bad_message"
        async with httpx.AsyncClient(base_url=app.base_url) as http:
            live = (await http.get("/metrics")).text
            assert 'parley_live_sessions{channel="voice"} 1.0' in live
            assert 'parley_bad_messages_total{channel="voice"} 1.0' in live
            assert 'parley_errors_total{code="bad_message"} 1.0' in live
            assert 'parley_turn_latency_seconds_count{stage="voice_to_voice"} 1.0' in live
            assert 'parley_turn_latency_seconds_count{stage="stt"} 1.0' in live
            await voice.ws.close()

            async def gone() -> bool:
                text = (await http.get("/metrics")).text
                return 'parley_live_sessions{channel="voice"} 0.0' in text

            await bounded(gone, "the live gauge to drop")
